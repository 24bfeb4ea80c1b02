"""Scene rendering of the embedded world.

A frame is a background scene (drawn from one pool shared by every class, desaturated, so that
it says nothing about the class) with, when the clip is `visible`, the class's object on top.

- Objects (every category but people): shape (8 kinds), hue, size, aspect ratio, a pattern
  with a second hue, and a motion, all from the class's visual parameters u in [0, 1]^8 plus a
  per-clip jitter, scale and position. Objects are saturated; scenes are not.
- People: every people clip shows a person. The classes differ only by the colour of a small
  badge on the shirt and the pose of the arms, drawn from a narrow range (`EYE_SPREAD`); when
  the clip is not visible the person's badge and pose are random within that range. Clips of
  other categories show a bystander person at times (`BYSTANDER_P`), so a person alone does
  not give the category away.

The object is whole in every frame (position and motion are clamped), so it survives sampling
at 1 fps. Frames are uint8 RGB, shape (T, H, W, 3).
"""

from __future__ import annotations

import colorsys

import numpy as np

SHAPES = ("disk", "square", "triangle", "diamond", "ring", "cross", "star", "crescent")
PATTERNS = ("solid", "stripes", "halves", "core")
MOTIONS = ("static", "drift", "bob", "orbit")
SCENES = ("sky", "room", "vignette", "bands")
#: Parameters of an object that make a discrete choice (shape, pattern, motion): they come from
#: the class alone, without the clip's jitter, so a class keeps its shape.
DISCRETE = (0, 4, 6)
#: Probability that a clip of another category shows a bystander person.
BYSTANDER_P = 0.3


def hsv(h: float, s: float, v: float) -> np.ndarray:
    return np.asarray(colorsys.hsv_to_rgb(h % 1.0, min(max(s, 0.0), 1.0), min(max(v, 0.0), 1.0)))


def _lerp(u: float, lo: float, hi: float) -> float:
    return lo + (hi - lo) * float(u)


_INTERP_CACHE: dict[tuple[int, int], np.ndarray] = {}


def _interp_matrix(n_out: int, n_in: int) -> np.ndarray:
    """(n_out, n_in) linear interpolation weights from n_in knots to n_out samples."""
    key = (n_out, n_in)
    if key not in _INTERP_CACHE:
        pos = np.linspace(0.0, n_in - 1.0, n_out)
        lo = np.minimum(np.floor(pos).astype(int), n_in - 2)
        frac = pos - lo
        mat = np.zeros((n_out, n_in))
        mat[np.arange(n_out), lo] = 1.0 - frac
        mat[np.arange(n_out), lo + 1] = frac
        _INTERP_CACHE[key] = mat
    return _INTERP_CACHE[key]


def render_scene(rng: np.random.Generator, kind: int, h: int, w: int, hue: float | None = None) -> np.ndarray:
    """A muted background, float32 RGB in [0, 1], shape (h, w, 3). `hue`: the venue's (a little
    jitter, enough colour to tell venues apart); None: a random hue, desaturated."""
    ys = np.linspace(0.0, 1.0, h)[:, None]
    xs = np.linspace(0.0, 1.0, w)[None, :]
    if hue is None:
        hue, sat, spread = rng.uniform(), (0.05, 0.3), 0.3
    else:
        hue, sat, spread = hue + rng.uniform(-0.03, 0.03), (0.3, 0.5), 0.05
    top = hsv(hue, rng.uniform(*sat), rng.uniform(0.45, 0.9))
    bottom = hsv(hue + rng.uniform(-spread, spread), rng.uniform(*sat), rng.uniform(0.2, 0.6))
    name = SCENES[kind]
    if name == "sky":
        horizon = rng.uniform(0.4, 0.75)
        mix = np.clip((ys - horizon) * 25.0, 0.0, 1.0) + 0.0 * xs
        img = top * (1 - mix[..., None]) * (1.0 - 0.3 * ys[..., None]) + bottom * mix[..., None]
    elif name == "room":
        floor = rng.uniform(0.55, 0.8)
        mix = (ys > floor + 0.08 * np.abs(xs - 0.5)).astype(float)
        img = top * (1 - mix[..., None]) + bottom * mix[..., None]
    elif name == "vignette":
        r = np.sqrt((xs - rng.uniform(0.3, 0.7)) ** 2 + (ys - rng.uniform(0.3, 0.7)) ** 2)
        img = top * (1.0 - 0.6 * np.clip(r, 0, 1))[..., None] + 0.0 * bottom
    else:
        period = rng.uniform(0.15, 0.4)
        mix = (np.sin(2 * np.pi * ys / period + rng.uniform(0, 6.3)) > 0).astype(float) + 0.0 * xs
        img = top * (1 - mix[..., None]) + bottom * mix[..., None]
    # low-frequency texture plus grain, static over the clip
    coarse = rng.standard_normal((4, 5))
    rows = (coarse[:, :, None] * _interp_matrix(w, 5).T[None]).sum(axis=1)  # (4, w), no BLAS call
    tex = (_interp_matrix(h, 4)[:, :, None] * rows[None]).sum(axis=1)  # (h, w)
    grain = rng.standard_normal((h, w)) * rng.uniform(0.01, 0.04)
    return np.clip(img + (0.05 * tex + grain)[..., None], 0.0, 1.0).astype(np.float32)


def _shape_mask(name: str, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Inside-test of a shape in normalised coordinates (x, y in [-1, 1], y pointing down)."""
    if name == "disk":
        return x * x + y * y <= 1.0
    if name == "square":
        return np.maximum(np.abs(x), np.abs(y)) <= 0.85
    if name == "triangle":
        return (y <= 0.85) & (y >= -1.0 + 2.0 * np.abs(x))
    if name == "diamond":
        return np.abs(x) + np.abs(y) <= 1.0
    if name == "ring":
        r2 = x * x + y * y
        return (r2 <= 1.0) & (r2 >= 0.3)
    if name == "cross":
        return ((np.abs(x) <= 0.33) | (np.abs(y) <= 0.33)) & (np.maximum(np.abs(x), np.abs(y)) <= 1.0)
    if name == "star":
        r = np.sqrt(x * x + y * y)
        theta = np.arctan2(y, x)
        return r <= 0.45 + 0.55 * np.abs(np.cos(2.5 * theta))
    if name == "crescent":
        return (x * x + y * y <= 1.0) & ((x - 0.45) ** 2 + y * y > 0.56)
    raise KeyError(f"unknown shape {name!r}")


class Layer:
    """A sprite drawn once on its own canvas: `mask` (h, w) and `colour` (h, w, 3) whose top-left
    corner sits at (y0, x0) of the frame at t = 0 (may lie outside the frame)."""

    def __init__(self, h: int, w: int, y0: int, x0: int):
        self.mask = np.zeros((h, w), dtype=bool)
        self.colour = np.zeros((h, w, 3), dtype=np.float32)
        self.y0, self.x0 = y0, x0

    def paint(self, inside: np.ndarray, oy: int, ox: int, colour: np.ndarray) -> None:
        """Paint `inside` (a boolean patch whose top-left is (oy, ox) on the canvas)."""
        ny, nx = inside.shape
        m = self.mask[oy : oy + ny, ox : ox + nx]
        c = self.colour[oy : oy + ny, ox : ox + nx]
        c[inside] = colour if colour.ndim == 1 else colour[inside]
        m |= inside

    def freeze(self) -> None:
        """Turn the colours into uint8 (call once, after painting)."""
        self.colour = _to_uint8(self.colour)

    def paste(self, frame: np.ndarray, dy: int, dx: int) -> None:
        """Composite onto `frame`, shifted by (dy, dx) pixels; clipped at the frame's edges."""
        fh, fw = frame.shape[:2]
        y0, x0 = self.y0 + dy, self.x0 + dx
        ya, xa = max(y0, 0), max(x0, 0)
        yb, xb = min(y0 + self.mask.shape[0], fh), min(x0 + self.mask.shape[1], fw)
        if ya >= yb or xa >= xb:
            return
        m = self.mask[ya - y0 : yb - y0, xa - x0 : xb - x0]
        frame[ya:yb, xa:xb][m] = self.colour[ya - y0 : yb - y0, xa - x0 : xb - x0][m]


def _to_uint8(img: np.ndarray) -> np.ndarray:
    return (np.clip(img, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def _coords(ny: int, nx: int, cy: float, cx: float, hy: float, hx: float):
    """Normalised coordinates ((ny, 1), (1, nx)) of a canvas around centre (cy, cx)."""
    yy = (np.arange(ny)[:, None] + 0.5 - cy) / hy
    xx = (np.arange(nx)[None, :] + 0.5 - cx) / hx
    return yy, xx


class ObjectSprite:
    """A class's object with one clip's jitter, scale, position and motion (a translation)."""

    def __init__(self, u: np.ndarray, rng: np.random.Generator, h: int, w: int, duration: float):
        u = np.clip(u, 0.0, 0.999)
        self.shape = SHAPES[int(u[0] * len(SHAPES))]
        self.pattern = PATTERNS[int(u[4] * len(PATTERNS))]
        self.motion = MOTIONS[int(u[6] * len(MOTIONS))]
        colour = hsv(u[1], rng.uniform(0.75, 1.0), rng.uniform(0.75, 1.0))
        colour2 = hsv(u[1] + _lerp(u[5], 0.25, 0.75), rng.uniform(0.7, 1.0), rng.uniform(0.6, 1.0))
        size = _lerp(u[2], 0.30, 0.55) * h * rng.uniform(0.85, 1.15)
        aspect = 0.6 * (1.6 / 0.6) ** float(u[3])
        hy = min(size / 2 / np.sqrt(aspect), 0.45 * h)
        hx = min(size / 2 * np.sqrt(aspect), 0.45 * w)
        self.amp = _lerp(u[7], 0.04, 0.14) * w if self.motion != "static" else 0.0
        margin_x, margin_y = hx + self.amp + 1, hy + self.amp + 1
        cx = rng.uniform(min(margin_x, w / 2), max(w - margin_x, w / 2))
        cy = rng.uniform(min(margin_y, h / 2), max(h - margin_y, h / 2))
        self.phase = rng.uniform(0, 2 * np.pi)
        self.omega = 2 * np.pi / max(duration, 0.5) * rng.uniform(0.5, 1.0)
        stripe_angle = rng.uniform(0, np.pi)

        y0, x0 = int(np.floor(cy - hy)), int(np.floor(cx - hx))
        ny, nx = int(np.ceil(cy + hy)) + 1 - y0, int(np.ceil(cx + hx)) + 1 - x0
        yy, xx = _coords(ny, nx, cy - y0, cx - x0, hy, hx)
        mask = _shape_mask(self.shape, xx, yy)
        if self.pattern == "stripes":
            second = np.sin(4.0 * np.pi * (xx * np.cos(stripe_angle) + yy * np.sin(stripe_angle))) > 0
        elif self.pattern == "halves":
            second = np.broadcast_to(xx > 0, mask.shape)
        elif self.pattern == "core":
            second = xx * xx + yy * yy < 0.2
        else:
            second = np.zeros(mask.shape, dtype=bool)
        fill = np.where(second[..., None], colour2, colour) * (1.0 - 0.2 * (np.clip(yy, -1, 1) + 1.0) / 2.0)[..., None]
        self.layer = Layer(ny, nx, y0, x0)
        self.layer.paint(mask, 0, 0, fill.astype(np.float32))

    def offset(self, t: float) -> tuple[int, int]:
        s = np.sin(self.omega * t + self.phase)
        c = np.cos(self.omega * t + self.phase)
        dx = dy = 0.0
        if self.motion == "drift":
            dx = self.amp * s
        elif self.motion == "bob":
            dy = self.amp * s
        elif self.motion == "orbit":
            dx, dy = self.amp * s, self.amp * c
        return int(round(dy)), int(round(dx))


class PersonSprite:
    """A stick-like person. `cue` (u in [0, 1]^8, the people category's narrow range) sets the
    badge hue (cue[1]) and the arm angle (cue[2]); everything else is random per clip."""

    def __init__(self, cue: np.ndarray, rng: np.random.Generator, h: int, w: int, scale: float):
        cue = np.clip(cue, 0.0, 1.0)
        H = scale * h * rng.uniform(0.9, 1.05)
        skin = hsv(rng.uniform(0.02, 0.1), rng.uniform(0.3, 0.6), rng.uniform(0.45, 0.95))
        shirt = hsv(rng.uniform(), rng.uniform(0.15, 0.45), rng.uniform(0.35, 0.8))
        pants = hsv(rng.uniform(), rng.uniform(0.1, 0.4), rng.uniform(0.15, 0.45))
        badge = hsv(cue[1], 1.0, 1.0)
        arm = np.deg2rad(_lerp(cue[2], -70.0, 70.0))  # from hanging down to raised
        half_w = 0.42 * H  # arms included
        cx = rng.uniform(min(half_w + 1, w / 2), max(w - half_w - 1, w / 2))
        top = rng.uniform(0.0, max(h - H - 1, 0.0))
        self.bob = rng.uniform(0.0, 0.03) * h
        self.phase = rng.uniform(0, 2 * np.pi)

        ny, nx = int(np.ceil(H)) + 2, int(np.ceil(2 * half_w)) + 2
        self.layer = Layer(ny, nx, int(np.floor(top)), int(np.floor(cx - half_w)))
        ys = np.arange(ny)[:, None] + 0.5 - (top - np.floor(top))  # canvas y relative to the head top
        xs = np.arange(nx)[None, :] + 0.5 - (cx - np.floor(cx - half_w))  # relative to the body axis
        canvas = self.layer

        def box(cy, cx_, hy, hx):
            return (np.abs(ys - cy) <= hy) & (np.abs(xs - cx_) <= hx)

        for side in (-1, 1):
            canvas.paint(box(0.8 * H, side * 0.06 * H, 0.2 * H, 0.04 * H), 0, 0, pants)
        canvas.paint(box(0.45 * H, 0.0, 0.17 * H, 0.11 * H), 0, 0, shirt)
        canvas.paint((ys - 0.15 * H) ** 2 + xs**2 <= (0.12 * H) ** 2, 0, 0, skin)
        arm_len, thick, sy = 0.3 * H, 0.035 * H, 0.32 * H
        for side in (-1, 1):
            sx = side * 0.11 * H
            vx, vy = side * arm_len * np.cos(arm), -arm_len * np.sin(arm)
            along = np.clip(((xs - sx) * vx + (ys - sy) * vy) / (vx * vx + vy * vy), 0.0, 1.0)
            dist = np.hypot(xs - (sx + along * vx), ys - (sy + along * vy))
            canvas.paint(dist <= thick, 0, 0, skin)
        canvas.paint(box(0.42 * H, 0.0, 0.06 * H, 0.06 * H), 0, 0, badge)

    def offset(self, t: float) -> tuple[int, int]:
        return int(round(self.bob * np.sin(2 * np.pi * t + self.phase))), 0


def render_frames(
    rng: np.random.Generator,
    n_frames: int,
    fps: float,
    h: int,
    w: int,
    scene: int,
    hue: float | None,
    object_u: np.ndarray | None,
    person_cue: np.ndarray | None,
    bystander_cue: np.ndarray | None,
) -> np.ndarray:
    """The clip's frames. `object_u`: the class object (visible, non-people classes);
    `person_cue`: the central person of a people clip (class cue when visible, a random cue of
    the people range otherwise); `bystander_cue`: a smaller person at the side, or None."""
    base = render_scene(rng, scene, h, w, hue)
    duration = n_frames / fps
    sprites: list = []
    if bystander_cue is not None:
        sprites.append(PersonSprite(bystander_cue, rng, h, w, scale=0.5))
    if person_cue is not None:
        sprites.append(PersonSprite(person_cue, rng, h, w, scale=0.85))
    if object_u is not None:
        sprites.append(ObjectSprite(object_u, rng, h, w, duration))
    frames = np.repeat(_to_uint8(base)[None], n_frames, axis=0)
    for sprite in sprites:
        sprite.layer.freeze()
    for i in range(n_frames):
        for sprite in sprites:
            dy, dx = sprite.offset(i / fps)
            sprite.layer.paste(frames[i], dy, dx)
    return frames
