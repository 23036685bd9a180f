"""Jury kinds for `build_judge`: members that differ in seed, persona or model.

  jury:seeds:N          self-consistency: N members, same model, sampling seeds seed..seed+N-1
  jury:personas:N       N built-in personas (a seeded, nested pick: the first 3 of 5 are the 3)
  jury:self-personas:N  N personas the model writes itself (recorded in the jury's provenance)
  jury:models           one member per model in `models=[...]`
A kind may end with ":likelihood" to use likelihood members instead of generating ones (a rubric
judge and a pairwise judge sharing persona and seed).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from selflab.errors import ConfigError
from selflab.judges.base import DisagreePolicy
from selflab.judges.jury import Aggregate, DualJudge, Jury
from selflab.judges.likelihood import LikelihoodOptions, likelihood_from
from selflab.judges.pairwise import pairwise_from
from selflab.judges.personas import generate_personas, pick_personas
from selflab.judges.registry import JudgeContext, kind_help, register_judge
from selflab.judges.rubric import RubricOptions, rubric_from
from selflab.models.types import LanguageModel, SamplingParams

USAGE = (
    "jury:seeds:N, jury:personas:N, jury:self-personas:N or jury:models (optionally ending in :likelihood)"
)


class JuryOptions(RubricOptions):
    """A rubric member's options, plus the pairwise and likelihood members' and the jury's own."""

    pairwise_template: str = Field("pairwise", description="pairwise members' template")
    both_orders: bool = Field(True, description="pairwise/likelihood members ask in both orders")
    on_disagree: DisagreePolicy = Field("tie", description="pairwise members' policy when orders disagree")
    tie_margin: float = Field(0.0, ge=0.0, lt=0.5, description="likelihood members' tie margin")
    personas: list[str] | None = Field(None, description="user-defined personas for jury:personas")
    aggregate: Aggregate | None = Field(
        None, description="majority, mean or median (pointwise default: mean)"
    )
    jury_temperature: float = Field(
        0.7,
        ge=0.0,
        le=10.0,
        description="sampling temperature of jury:seeds members",
    )


def _member(
    model: LanguageModel,
    o: JuryOptions,
    member_kind: Literal["llm", "likelihood"],
    persona: str | None,
    sampling: SamplingParams,
) -> object:
    if member_kind == "likelihood":
        fields = LikelihoodOptions.model_fields
        opts = LikelihoodOptions(**{k: v for k, v in o.model_dump().items() if k in fields})
        return likelihood_from(model, opts.model_copy(update={"seed": sampling.seed or 0}), persona)
    return DualJudge(
        rubric_from(model, o, persona, sampling),
        pairwise_from(model, o, o.pairwise_template, persona, sampling, o.both_orders, o.on_disagree),
    )


def _count(part: str, kind: str) -> int:
    try:
        n = int(part)
    except ValueError:
        n = 0
    if n < 1:
        raise ConfigError(
            f"judge kind {kind!r} needs a jury size of at least 1", f"e.g. jury:personas:5; {kind_help()}"
        )
    return n


@register_judge(
    "jury", JuryOptions, "several members vote; the jury reports the aggregate and every vote", USAGE
)
def build_jury(ctx: JudgeContext, o: JuryOptions) -> Jury:
    parts = list(ctx.args)
    member_kind: Literal["llm", "likelihood"] = "llm"
    if parts and parts[-1] in ("likelihood", "llm"):
        member_kind = parts.pop()  # type: ignore[assignment]
    source = parts[0] if parts else ""
    if source == "models":
        if not ctx.models:
            raise ConfigError("jury:models needs a list of models", "pass models=[model_a, model_b, ...]")
        members = [_member(m, o, member_kind, o.persona, o.sampling()) for m in ctx.models]
        return Jury(members, o.aggregate, name=f"jury:models[{len(members)}]")
    if len(parts) != 2:
        raise ConfigError(f"unknown judge kind {ctx.kind!r}", kind_help())
    n = _count(parts[1], ctx.kind)
    if source == "seeds":
        if member_kind == "likelihood":
            raise ConfigError("likelihood judges do not sample, so jury:seeds cannot diversify them", USAGE)
        members = [
            _member(ctx.model, o, member_kind, o.persona, o.sampling(o.jury_temperature, o.seed + i))
            for i in range(n)
        ]
        seeds = list(range(o.seed, o.seed + n))
        return Jury(members, o.aggregate, name=f"jury:seeds[{n}]", provenance={"seeds": seeds})
    if source in ("personas", "self-personas"):
        provenance: dict = {}
        if source == "self-personas":
            generation = generate_personas(ctx.model, n, seed=o.seed)
            personas = generation.personas
            provenance["persona_generation"] = generation.model_dump()
        elif o.personas:
            personas = [o.personas[i % len(o.personas)] for i in range(n)]
        else:
            personas = pick_personas(n, seed=o.seed)
        provenance["personas"] = personas
        members = [_member(ctx.model, o, member_kind, p, o.sampling()) for p in personas]
        return Jury(members, o.aggregate, name=f"jury:{source}[{n}]", provenance=provenance)
    raise ConfigError(f"unknown jury kind {ctx.kind!r}", USAGE)
