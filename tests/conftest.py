import dataclasses
from pathlib import Path

import pytest
import yaml

from xmd_core.config import PACKAGE_DATA, PROFILES_DIR, load_profile


@pytest.fixture(scope="session")
def real_clip() -> Path:
    """The real VGGSound clip shipped with the package."""
    return PACKAGE_DATA / "vggsound" / "clips" / "MnEZwnRuQR8_000030.mp4"


@pytest.fixture(scope="session")
def smoke_yaml():
    """Write the smoke profile with its artifacts and results under a folder; returns its path."""

    def make(root: Path) -> Path:
        raw = yaml.safe_load((PROFILES_DIR / "smoke.yaml").read_text())
        raw.update(artifacts_dir=str(root / "artifacts"), results_dir=str(root / "results"))
        path = root / "smoke.yaml"
        path.write_text(yaml.safe_dump(raw))
        return path

    return make


@pytest.fixture(scope="session")
def smoke_in():
    """The smoke profile with its artifacts and results under a folder (no file written)."""

    def make(root: Path):
        return dataclasses.replace(load_profile("smoke"), artifacts_dir=root / "artifacts", results_dir=root / "results")

    return make
