"""Model runtime: one `LanguageModel` protocol, several backends, selected by a spec string."""

from selflab.models.types import (
    Completion,
    GenerationRequest,
    HiddenStates,
    LanguageModel,
    LocalLanguageModel,
    Message,
    SamplingParams,
)

__all__ = [
    "Completion",
    "GenerationRequest",
    "HiddenStates",
    "LanguageModel",
    "LocalLanguageModel",
    "Message",
    "SamplingParams",
]
