"""Model runtime: one `LanguageModel` protocol, several backends, selected by a spec string."""

from selflab.models.registry import clear_cache, load_model
from selflab.models.spec import ModelSpec, parse_spec
from selflab.models.types import (
    Completion,
    Constraint,
    GenerationRequest,
    HiddenStates,
    LanguageModel,
    LocalLanguageModel,
    Message,
    SamplingParams,
)

__all__ = [
    "ModelSpec",
    "clear_cache",
    "load_model",
    "parse_spec",
    "Completion",
    "Constraint",
    "GenerationRequest",
    "HiddenStates",
    "LanguageModel",
    "LocalLanguageModel",
    "Message",
    "SamplingParams",
]
