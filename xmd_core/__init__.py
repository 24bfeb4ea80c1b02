"""xmd_core: the package behind the "Bridging Ears and Eyes" reproduction.

One responsibility per module: `config` (profiles), `data` (VGGSound index and splits),
`media` (decoding), `mcq` (questions), `world` (the embedded world), `runner` (notebooks and
book), `cli` (the `xmd` command).
"""

__version__ = "0.1.0"
