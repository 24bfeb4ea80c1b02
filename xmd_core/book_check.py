"""The built book, checked the way a reader opens it: every page in headless Chromium.

For each HTML page of the build (Sphinx's search and index pages aside) it asserts:

- no error in the browser console (a broken script, a missing file the page asks for);
- every image loaded (`naturalWidth > 0`);
- every widget view rendered by the bundled widget manager (each view's script tag has a
  rendered widget next to it);
- every `<audio>` / `<video>` element has a finite duration once its metadata is read;
- no table cell shows a bare NaN (a missing value says why);
- every selector of the exploration chapter (a Dropdown linked on the client side to a Stack of
  panels, `xmd_core.explore_widgets`) switches the panel shown when another option is chosen,
  and a class selector then shows the chosen class's panel.

The browser is the system's (Debian's `chromium` and `chromium-driver`), driven by Selenium;
nothing downloads a browser of its own. :func:`browser_available` says why a check cannot run.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path

#: Pages that Sphinx writes for itself, not chapters.
SKIPPED_PAGES = ("genindex.html", "search.html", "py-modindex.html")
#: Seconds to wait for a page's widgets and media to settle.
SETTLE_S = 10.0
#: The exploration chapter's selectors and panels (`xmd_core.explore_widgets` adds these classes).
SELECTOR_CSS = ".xmd-explore-selector select"
PANEL_CSS = ".xmd-explore-panel"

_STATE_JS = """
const views = [...document.querySelectorAll('script[type="application/vnd.jupyter.widget-view+json"]')];
const rendered = views.filter(s => {
  const around = s.parentElement ? s.parentElement.querySelectorAll('.jupyter-widgets, .widget-container, [class*="widget-"]') : [];
  return around.length > 0;
});
return {
  images: [...document.images].filter(i => i.complete && i.naturalWidth === 0).map(i => i.getAttribute('src')),
  pending_images: [...document.images].filter(i => !i.complete).length,
  bare_missing: [...document.querySelectorAll('td')].filter(td => ['NaN', 'nan', '<NA>'].includes(td.textContent.trim())).length,
  views: views.length,
  rendered: rendered.length,
  media: [...document.querySelectorAll('audio, video')].map(m => ({ready: m.readyState, duration: m.duration,
           src: (m.currentSrc || m.getAttribute('src') || (m.querySelector('source') || {}).src || '').slice(0, 60)})),
};
"""


@dataclass(frozen=True)
class Problem:
    page: str
    what: str

    def __str__(self) -> str:
        return f"{self.page}: {self.what}"


def browser_available() -> str:
    """'' when headless Chromium and its driver are installed, else why not."""
    missing = [name for name in ("chromium", "chromedriver") if shutil.which(name) is None]
    if missing:
        return f"{' and '.join(missing)} not on PATH (Debian: apt-get install chromium chromium-driver)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "the selenium package is not installed"
    return ""


def _driver():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--autoplay-policy=no-user-gesture-required",
                 "--allow-file-access-from-files"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)


def pages(html_dir: Path) -> list[Path]:
    """Every page of a build, in path order."""
    return sorted(p for p in Path(html_dir).rglob("*.html") if p.name not in SKIPPED_PAGES and "_static" not in p.parts and "_sources" not in p.parts)


def _settled(driver, deadline: float) -> dict:
    driver.execute_script("document.querySelectorAll('img[loading=lazy]').forEach(i => { i.loading = 'eager'; });")  # load them all
    state = driver.execute_script(_STATE_JS)
    while time.time() < deadline:
        media_waiting = any(m["ready"] < 1 for m in state["media"])
        if not media_waiting and state["pending_images"] == 0 and state["rendered"] >= state["views"]:
            break
        time.sleep(0.25)
        state = driver.execute_script(_STATE_JS)
    return state


def check_page(driver, page: Path, root: Path, screenshots: Path | None = None) -> list[Problem]:
    name = str(page.relative_to(root))
    driver.get(page.resolve().as_uri())
    state = _settled(driver, time.time() + SETTLE_S)
    problems = [Problem(name, f"console: {entry['message'][:200]}") for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
    problems += [Problem(name, f"image not loaded: {src}") for src in state["images"]]
    if state["pending_images"]:
        problems.append(Problem(name, f"{state['pending_images']} image(s) still loading after {SETTLE_S:.0f} s"))
    if state["bare_missing"]:  # a missing value says why
        problems.append(Problem(name, f"{state['bare_missing']} table cell(s) show a bare NaN"))
    if state["rendered"] < state["views"]:
        problems.append(Problem(name, f"{state['views'] - state['rendered']} of {state['views']} widget view(s) not rendered"))
    for media in state["media"]:
        if media["ready"] < 1 or media["duration"] is None or not (media["duration"] < float("inf")):
            problems.append(Problem(name, f"media without a finite duration: {media['src']!r} (readyState {media['ready']})"))
    return problems + check_selectors(driver, name, screenshots)


def _shown_panel(driver, selector) -> tuple[str, str]:
    """(the markup, the class label) of what the Stack after a selector shows now."""
    stack = selector.find_element("xpath", "./ancestor::*[contains(@class, 'xmd-explore-selector')]/following-sibling::*[1]")
    labels = [p.get_attribute("data-label") for p in stack.find_elements("css selector", PANEL_CSS) if p.is_displayed()]
    return stack.get_attribute("innerHTML"), (labels[0] if labels else "")


def check_selectors(driver, name: str, screenshots: Path | None = None) -> list[Problem]:
    """Choose each selector's last option: the panel shown must change (and, for a class
    selector, be the chosen class's). With `screenshots`, the page before and after is saved."""
    from selenium.webdriver.support.ui import Select

    problems = []
    for k, element in enumerate(driver.find_elements("css selector", SELECTOR_CSS)):
        choice = Select(element)
        before, _ = _shown_panel(driver, element)
        if screenshots:
            driver.execute_script("arguments[0].scrollIntoView();", element)
            driver.save_screenshot(str(screenshots / f"{Path(name).stem}-{k}-before.png"))
        last = choice.options[-1].text
        choice.select_by_index(len(choice.options) - 1)
        deadline = time.time() + SETTLE_S
        while (after := _shown_panel(driver, element))[0] == before and time.time() < deadline:
            time.sleep(0.2)
        if screenshots:
            driver.save_screenshot(str(screenshots / f"{Path(name).stem}-{k}-after.png"))
        if after[0] == before:
            problems.append(Problem(name, f"selector {k} ({last!r} chosen) did not change the panel shown"))
        elif after[1] and not last.startswith(after[1]):
            problems.append(Problem(name, f"selector {k}: {last!r} chosen, the panel of {after[1]!r} shown"))
    return problems


def check_book(html_dir: str | Path, screenshots: str | Path | None = None) -> tuple[list[Problem], int]:
    """(problems, pages checked) of the build in `html_dir`; with `screenshots` (a folder), each
    selector's page is saved there before and after switching."""
    root = Path(html_dir)
    found = pages(root)
    if not found:
        return [Problem(str(root), "no HTML page: build the book first")], 0
    driver = _driver()
    try:
        if screenshots:
            Path(screenshots).mkdir(parents=True, exist_ok=True)
            driver.set_window_size(1280, 1400)
        problems = [p for page in found for p in check_page(driver, page, root, Path(screenshots) if screenshots else None)]
    finally:
        driver.quit()
    return problems, len(found)
