"""Model registry, adapters (processor + chat template -> inputs) and tiny checkpoints."""

from .adapters import CONDITIONS, Adapter, ModelSpec, Sample, letter_token_ids
from .registry import REGISTRY, TINY_FAMILY, ModelUnavailable, checkpoint_path, get_spec, load_model

__all__ = [
    "CONDITIONS",
    "REGISTRY",
    "TINY_FAMILY",
    "Adapter",
    "ModelSpec",
    "ModelUnavailable",
    "Sample",
    "checkpoint_path",
    "get_spec",
    "letter_token_ids",
    "load_model",
]
