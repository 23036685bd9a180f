"""The judge registry: each judge kind declares its own typed options model and a builder.

A judge module registers itself:

    class RubricOptions(GenerationOptions):
        samples: int = Field(1, ge=1, description="...")

    @register_judge("rubric", RubricOptions, "pointwise grading with a rubric prompt")
    def _build(ctx: JudgeContext, o: RubricOptions) -> RubricJudge: ...

and `build_judge`, the CLI's help and the judge benchmark find it with no other edit: every module
of this package is imported on first use. Adding a judge is one file plus its test.
"""

from __future__ import annotations

import importlib
import pkgutil
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from selflab.errors import ConfigError
from selflab.judges.fence import FenceMode
from selflab.judges.types import Judge
from selflab.models.types import LanguageModel, SamplingParams

# Modules of this package that hold no judge (not imported by discovery).
_NOT_JUDGES = frozenset({"cli", "registry", "factory"})


class JudgeOptions(BaseModel):
    """Options every judge takes; unknown options are an error."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    seed: int = Field(0, description="seed of sampling and of the per-prompt fence codes")


class PromptOptions(JudgeOptions):
    """Options of judges that show the judged texts in a prompt."""

    persona: str | None = Field(None, description="role the judge plays (a system message)")
    use_reference: bool = Field(True, description="show an item's reference answer when it has one")
    fence: FenceMode = Field(
        "boundary", description="injection defence for judged texts: boundary, datamark or none"
    )


class GenerationOptions(PromptOptions):
    """Options of judges that generate their verdict."""

    temperature: float = Field(0.0, ge=0.0, le=10.0, description="sampling temperature (0 = greedy)")
    top_p: float = Field(1.0, gt=0.0, le=1.0, description="nucleus sampling mass")
    max_new_tokens: int = Field(256, ge=1, description="token budget of the judge's reasoning")
    direct: bool = Field(False, description="no reasoning: ask for the verdict only, after a forced prefix")
    constrain: bool = Field(
        True, description="decode the final verdict line under a constraint (needs a backend that honours it)"
    )

    def sampling(self, temperature: float | None = None, seed: int | None = None) -> SamplingParams:
        return SamplingParams(
            temperature=self.temperature if temperature is None else temperature,
            top_p=self.top_p,
            max_new_tokens=self.max_new_tokens,
            seed=self.seed if seed is None else seed,
        )


@dataclass(frozen=True)
class JudgeContext:
    """What a builder gets besides its options: the kind string's parts and the models."""

    kind: str
    args: tuple[str, ...]
    model: LanguageModel
    models: list[LanguageModel] | None = None
    decider: LanguageModel | None = None
    opponent: LanguageModel | None = None


OptionsT = TypeVar("OptionsT", bound=JudgeOptions)
Builder = Callable[[JudgeContext, Any], Judge]


@dataclass(frozen=True)
class JudgeKind:
    name: str
    options: type[JudgeOptions]
    build: Builder
    summary: str
    usage: str


_KINDS: dict[str, JudgeKind] = {}


def register_judge(
    name: str, options: type[OptionsT], summary: str, usage: str | None = None
) -> Callable[[Callable[[JudgeContext, OptionsT], Judge]], Callable[[JudgeContext, OptionsT], Judge]]:
    """Decorator registering `build(ctx, options) -> Judge` under `name` (the kind's first part)."""

    def decorate(
        build: Callable[[JudgeContext, OptionsT], Judge],
    ) -> Callable[[JudgeContext, OptionsT], Judge]:
        _KINDS[name] = JudgeKind(name, options, build, summary, usage or name)
        return build

    return decorate


def judge_kinds() -> dict[str, JudgeKind]:
    """Every registered kind (importing the package's judge modules on first use)."""
    import selflab.judges as package

    for module in pkgutil.iter_modules(package.__path__):
        if module.name not in _NOT_JUDGES:
            importlib.import_module(f"{package.__name__}.{module.name}")
    return dict(sorted(_KINDS.items()))


def kind_help() -> str:
    return "use " + ", ".join(k.usage for k in judge_kinds().values())


def lookup(kind: str) -> JudgeKind:
    name = kind.split(":")[0]
    found = judge_kinds().get(name)
    if found is None:
        raise ConfigError(f"unknown judge kind {kind!r}", kind_help())
    return found


def _type_name(annotation: object) -> str:
    """A short readable type: "bool", "str | None", "none|boundary|datamark"."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Literal:
        return "|".join(map(str, args))
    if origin in (typing.Union, types.UnionType):
        return " | ".join(_type_name(a) for a in args)
    if args:
        return str(annotation).replace("typing.", "")
    return getattr(annotation, "__name__", str(annotation)).replace("NoneType", "None")


def options_help(kind: str | None = None) -> str:
    """Help text for one kind's options (or all kinds'), generated from the options models."""
    kinds = [lookup(kind)] if kind else list(judge_kinds().values())
    lines = []
    for k in kinds:
        lines.append(f"{k.usage}: {k.summary}")
        for field, info in k.options.model_fields.items():
            default = info.default if info.default is not None else "none"
            lines.append(
                f"  {field} ({_type_name(info.annotation)}, default {default}): {info.description or ''}"
            )
    return "\n".join(lines)


def parse_options(kind: str, options: dict[str, Any]) -> JudgeOptions:
    """The kind's options model filled from `options`, or a ConfigError naming each problem."""
    entry = lookup(kind)
    try:
        return entry.options(**options)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ConfigError(
            f"bad options for judge {kind!r}: {problems}",
            f"{entry.name} takes {sorted(entry.options.model_fields)} (see `selflab judge --list-options`)",
        ) from exc


def accepted(kind: str, options: dict[str, Any]) -> dict[str, Any]:
    """The subset of `options` that `kind` declares (for callers that pass one set of settings to
    several kinds, such as the judge benchmark)."""
    fields = lookup(kind).options.model_fields
    return {k: v for k, v in options.items() if k in fields}


def build_judge(
    kind: str,
    model: LanguageModel,
    models: list[LanguageModel] | None = None,
    decider: LanguageModel | None = None,
    opponent: LanguageModel | None = None,
    **options: Any,
) -> Judge:
    """A judge from a kind string ("rubric", "jury:personas:5", ...) and that kind's options."""
    entry = lookup(kind)
    parsed = parse_options(kind, options)
    ctx = JudgeContext(kind, tuple(kind.split(":")[1:]), model, models, decider, opponent)
    return entry.build(ctx, parsed)
