import dataclasses
import shutil
import warnings
from pathlib import Path

import pytest
import yaml

from xmd_core.config import PACKAGE_DATA, PROFILES_DIR, load_profile


@pytest.fixture(scope="session")
def real_clip() -> Path:
    """The real VGGSound clip shipped with the package."""
    return PACKAGE_DATA / "vggsound" / "clips" / "MnEZwnRuQR8_000030.mp4"


class _SmokeStudy:
    """The smoke world with its four experts trained, built once per test session (on first
    use) and copied into each folder that asks for it, so that no module trains them again."""

    def __init__(self, tmp_path_factory):
        self.factory = tmp_path_factory
        self.artifacts: Path | None = None

    def seed(self, root: Path) -> None:
        if self.artifacts is None:
            from xmd_core.checkpoints import ensure_models

            base = self.factory.mktemp("smoke-study")
            profile = dataclasses.replace(load_profile("smoke"), artifacts_dir=base / "artifacts", results_dir=base / "results")
            with warnings.catch_warnings():  # ~20 steps: the smoke experts stay at chance
                warnings.filterwarnings("ignore", message="expert .* near chance", category=RuntimeWarning)
                ensure_models(profile, progress=False)
            self.artifacts = profile.artifacts_dir
        shutil.copytree(self.artifacts, root / "artifacts", symlinks=True)


@pytest.fixture(scope="session")
def smoke_study(tmp_path_factory):
    return _SmokeStudy(tmp_path_factory)


@pytest.fixture(scope="session")
def smoke_yaml(smoke_study):
    """Write the smoke profile with its artifacts and results under a folder; returns its path.
    `seeded=True`: the folder starts with the session's smoke world and experts."""

    def make(root: Path, seeded: bool = False) -> Path:
        if seeded:
            smoke_study.seed(root)
        raw = yaml.safe_load((PROFILES_DIR / "smoke.yaml").read_text())
        raw.update(artifacts_dir=str(root / "artifacts"), results_dir=str(root / "results"))
        path = root / "smoke.yaml"
        path.write_text(yaml.safe_dump(raw))
        return path

    return make


@pytest.fixture(scope="session")
def smoke_in(smoke_study):
    """The smoke profile with its artifacts and results under a folder (no file written).
    `seeded=True`: the folder starts with the session's smoke world and experts."""

    def make(root: Path, seeded: bool = False):
        if seeded:
            smoke_study.seed(root)
        return dataclasses.replace(load_profile("smoke"), artifacts_dir=root / "artifacts", results_dir=root / "results")

    return make


# `make test-fast` leaves out the marks "slow", "multiprocess" and "training". Tests that train
# through these modules' end-to-end fixtures are marked "training" here, by the fixtures they use.
_TRAINING_FIXTURES = {"trained", "audio_expert"}
_TRAINING_MODULES = {"test_distill", "test_experts", "test_switch"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        module = item.module.__name__.rsplit(".", 1)[-1]
        uses = set(item.fixturenames)
        if uses & _TRAINING_FIXTURES or (module in _TRAINING_MODULES and "smoke" in uses):
            item.add_marker(pytest.mark.training)
