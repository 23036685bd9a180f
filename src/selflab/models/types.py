"""The records every backend speaks: chat messages, sampling settings, requests, completions.

Everything above `models/` talks to a model only through `LanguageModel` and these types, so a
judge or a game never knows whether it runs on a local torch model or an HTTP server.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field, model_validator

Role = Literal["system", "user", "assistant"]


class Message(BaseModel):
    """One chat turn."""

    model_config = ConfigDict(frozen=True)

    role: Role
    content: str


def user(content: str) -> Message:
    return Message(role="user", content=content)


def system(content: str) -> Message:
    return Message(role="system", content=content)


def assistant(content: str) -> Message:
    return Message(role="assistant", content=content)


ConstraintKind = Literal["regex", "grammar", "json_schema"]


class Constraint(BaseModel):
    """What the generated text must match, as one typed value a request carries to every backend.

    `kind` says how to read `value`: a regular expression (`regex`), a context-free grammar in
    Lark/llguidance syntax (`grammar`), or a JSON schema serialised as JSON text (`json_schema`).
    The same strings work with llguidance in our engine and with vLLM / llama.cpp servers, so a
    constraint never depends on the backend that honours it.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: ConstraintKind
    value: str = Field(min_length=1)

    @classmethod
    def regex(cls, pattern: str) -> Constraint:
        return cls(kind="regex", value=pattern)

    @classmethod
    def grammar(cls, lark: str) -> Constraint:
        return cls(kind="grammar", value=lark)

    @classmethod
    def choice(cls, options: list[str] | tuple[str, ...]) -> Constraint:
        """Exactly one of `options` (a Lark alternation of string literals)."""
        import json

        if not options:
            raise ValueError("Constraint.choice needs at least one option")
        return cls(kind="grammar", value="start: " + " | ".join(json.dumps(str(o)) for o in options))

    @classmethod
    def json_schema(cls, schema: dict | str) -> Constraint:
        import json

        # Key order is kept: constrained decoders write properties in the schema's order.
        text = schema if isinstance(schema, str) else json.dumps(schema)
        return cls(kind="json_schema", value=text)


class SamplingParams(BaseModel):
    """How to decode. temperature 0 means greedy; `seed` makes one request reproducible on its own,
    whatever else shares its batch."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    temperature: float = Field(0.0, ge=0.0, le=10.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    top_k: int = Field(0, ge=0, description="0 disables top-k filtering")
    max_new_tokens: int = Field(128, ge=1, le=32768)
    stop: tuple[str, ...] = ()
    # The range torch.Generator.manual_seed takes: a larger seed must fail here, not in the engine.
    seed: int | None = Field(None, ge=-(2**63), lt=2**64)
    logprobs: bool = False
    # Optional constraint on the whole completion (after any assistant_prefix). None: free text.
    constraint: Constraint | None = None

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0


GREEDY = SamplingParams()


class GenerationRequest(BaseModel):
    """A chat conversation to continue, or a raw prompt string (`prompt`) used verbatim without a
    chat template. Exactly one of the two is set."""

    model_config = ConfigDict(frozen=True)

    messages: tuple[Message, ...] = ()
    prompt: str | None = None
    sampling: SamplingParams = GREEDY
    # Text appended after the chat template's assistant header, e.g. to force a format ("Score:").
    assistant_prefix: str = ""

    @model_validator(mode="after")
    def _one_input(self) -> GenerationRequest:
        if bool(self.messages) == (self.prompt is not None):
            raise ValueError("a GenerationRequest needs exactly one of `messages` or `prompt`")
        return self

    @classmethod
    def chat(cls, messages: list[Message] | str, **sampling: object) -> GenerationRequest:
        """Shorthand: `GenerationRequest.chat("hi", max_new_tokens=8)`."""
        if isinstance(messages, str):
            messages = [user(messages)]
        return cls(messages=tuple(messages), sampling=SamplingParams(**sampling))


FinishReason = Literal["stop", "length", "error"]


class Completion(BaseModel):
    """What came back for one request. `finish_reason` is "stop" for EOS or a stop string,
    "length" when max_new_tokens ran out, "error" when the backend failed for this request
    (then `error` says why and `text` is empty)."""

    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: FinishReason = "stop"
    token_logprobs: list[float] | None = None
    tokens: list[str] | None = None
    error: str | None = None


@dataclass
class HiddenStates:
    """Hidden states of one text: `layers[l]` is a (num_tokens, hidden) float32 array for
    l = 0 (embeddings) .. num_layers (last block output). `offsets` maps each token to its
    character span in the text, so callers can pick answer spans."""

    tokens: list[str]
    layers: list = field(default_factory=list)  # list[np.ndarray]
    offsets: list[tuple[int, int]] | None = None


@runtime_checkable
class LanguageModel(Protocol):
    """The one interface every part of selflab uses to call a model.

    `generate` is thread-safe: many callers (games, judges) may call it at once, and a local
    backend batches their requests together.
    """

    name: str

    def generate(self, requests: list[GenerationRequest]) -> list[Completion]: ...

    def score(self, prompt: str | list[Message], continuations: list[str]) -> list[float]:
        """Sum of log-probabilities of each continuation given the prompt (a raw string, or chat
        messages rendered with the chat template and an open assistant turn)."""
        ...


@runtime_checkable
class LocalLanguageModel(LanguageModel, Protocol):
    """A model whose weights are in this process: adds access to internals."""

    def hidden_states(self, texts: list[str]) -> list[HiddenStates]: ...

    def render(
        self, messages: list[Message] | tuple[Message, ...], add_generation_prompt: bool = True
    ) -> str:
        """The chat template applied to messages, as text."""
        ...
