from pathlib import Path

import pytest

from xmd_core.config import PACKAGE_DATA


@pytest.fixture(scope="session")
def real_clip() -> Path:
    """The real VGGSound clip shipped with the package."""
    return PACKAGE_DATA / "vggsound" / "clips" / "MnEZwnRuQR8_000030.mp4"
