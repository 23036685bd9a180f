"""Build judges from short strings, for the CLI, configs and the judge benchmark.

Kinds:
  rubric | pairwise | likelihood | debate | meta
  jury:seeds:N          self-consistency: N members, same model, sampling seeds seed..seed+N-1
  jury:personas:N       N built-in personas (a seeded, nested pick: the first 3 of 5 are the 3)
  jury:self-personas:N  N personas the model writes itself (recorded in the jury's provenance)
  jury:models           one member per model in `models=[...]`
A jury kind may end with ":likelihood" to use likelihood members instead of generating ones.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from selflab.errors import ConfigError
from selflab.judges.debate import DebateJudge
from selflab.judges.jury import DualJudge, Jury
from selflab.judges.likelihood import LikelihoodJudge
from selflab.judges.meta import MetaJudge
from selflab.judges.pairwise import PairwiseLLMJudge
from selflab.judges.personas import generate_personas, pick_personas
from selflab.judges.rubric import RubricJudge
from selflab.models.types import LanguageModel, SamplingParams

KIND_HELP = (
    "use rubric, pairwise, likelihood, debate, meta, jury:seeds:N, jury:personas:N, "
    "jury:self-personas:N or jury:models (optionally ending in :likelihood)"
)


class JudgeConfig(BaseModel):
    """Every option a judge built from a string can take; unknown options are an error."""

    model_config = ConfigDict(extra="forbid")

    kind: str = "rubric"
    template: str | None = Field(None, description="built-in template name or path of a .jinja file")
    pairwise_template: str = "pairwise"
    rubric: str | None = Field(None, description="rubric text, framed by the rubric_custom template")
    scale: tuple[float, float] | None = None
    persona: str | None = None
    personas: list[str] | None = Field(None, description="user-defined personas for jury:personas")
    temperature: float = Field(0.0, ge=0.0, le=10.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    max_new_tokens: int = Field(256, ge=1)
    samples: int = Field(1, ge=1)
    seed: int = 0
    direct: bool = Field(False, description="ask for the score/verdict only, with a forced answer prefix")
    use_reference: bool = True
    on_disagree: Literal["tie", "abstain"] = "tie"
    both_orders: bool = True
    aggregate: Literal["majority", "mean", "median"] | None = None
    jury_temperature: float = Field(
        0.7, ge=0.0, le=10.0, description="sampling temperature of jury:seeds members"
    )
    rounds: int = Field(2, ge=1)
    tie_margin: float = Field(0.0, ge=0.0, lt=0.5)

    def sampling(self, temperature: float | None = None, seed: int | None = None) -> SamplingParams:
        return SamplingParams(
            temperature=self.temperature if temperature is None else temperature,
            top_p=self.top_p,
            max_new_tokens=self.max_new_tokens,
            seed=self.seed if seed is None else seed,
        )


def _rubric(
    model: LanguageModel, config: JudgeConfig, persona: str | None, sampling: SamplingParams
) -> RubricJudge:
    return RubricJudge(
        model,
        template=config.template,
        rubric=config.rubric,
        scale=config.scale,
        persona=persona,
        sampling=sampling,
        samples=config.samples,
        seed=sampling.seed or 0,
        use_reference=config.use_reference,
        direct=config.direct,
    )


def _pairwise(
    model: LanguageModel, config: JudgeConfig, persona: str | None, sampling: SamplingParams
) -> PairwiseLLMJudge:
    return PairwiseLLMJudge(
        model,
        template=config.pairwise_template,
        persona=persona,
        sampling=sampling,
        both_orders=config.both_orders,
        on_disagree=config.on_disagree,
        use_reference=config.use_reference,
        direct=config.direct,
    )


def _likelihood(model: LanguageModel, config: JudgeConfig, persona: str | None) -> LikelihoodJudge:
    return LikelihoodJudge(
        model,
        template=config.template,
        rubric=config.rubric,
        scale=config.scale,
        persona=persona,
        pairwise_template=config.pairwise_template,
        use_reference=config.use_reference,
        both_orders=config.both_orders,
        tie_margin=config.tie_margin,
    )


def _member(
    model: LanguageModel, config: JudgeConfig, member_kind: str, persona: str | None, sampling: SamplingParams
) -> object:
    if member_kind == "likelihood":
        return _likelihood(model, config, persona)
    return DualJudge(_rubric(model, config, persona, sampling), _pairwise(model, config, persona, sampling))


def _count(part: str, kind: str) -> int:
    try:
        n = int(part)
    except ValueError:
        n = 0
    if n < 1:
        raise ConfigError(
            f"judge kind {kind!r} needs a jury size of at least 1", f"e.g. jury:personas:5; {KIND_HELP}"
        )
    return n


def build_jury(
    kind: str, model: LanguageModel, config: JudgeConfig, models: list[LanguageModel] | None = None
) -> Jury:
    parts = kind.split(":")
    member_kind = "llm"
    if parts[-1] in ("likelihood", "llm"):
        member_kind = parts.pop()
    source = parts[1] if len(parts) > 1 else ""
    if source == "models":
        if not models:
            raise ConfigError("jury:models needs a list of models", "pass models=[model_a, model_b, ...]")
        members = [_member(m, config, member_kind, config.persona, config.sampling()) for m in models]
        return Jury(members, config.aggregate, name=f"jury:models[{len(members)}]")
    if len(parts) != 3:
        raise ConfigError(f"unknown judge kind {kind!r}", KIND_HELP)
    n = _count(parts[2], kind)
    if source == "seeds":
        if member_kind == "likelihood":
            raise ConfigError(
                "likelihood judges do not sample, so jury:seeds cannot diversify them", KIND_HELP
            )
        members = [
            _member(
                model,
                config,
                member_kind,
                config.persona,
                config.sampling(config.jury_temperature, config.seed + i),
            )
            for i in range(n)
        ]
        return Jury(
            members,
            config.aggregate,
            name=f"jury:seeds[{n}]",
            provenance={"seeds": list(range(config.seed, config.seed + n))},
        )
    if source in ("personas", "self-personas"):
        provenance: dict = {}
        if source == "self-personas":
            generation = generate_personas(model, n, seed=config.seed)
            personas = generation.personas
            provenance["persona_generation"] = generation.model_dump()
        elif config.personas:
            personas = [config.personas[i % len(config.personas)] for i in range(n)]
        else:
            personas = pick_personas(n, seed=config.seed)
        provenance["personas"] = personas
        members = [_member(model, config, member_kind, p, config.sampling()) for p in personas]
        return Jury(members, config.aggregate, name=f"jury:{source}[{n}]", provenance=provenance)
    raise ConfigError(f"unknown jury kind {kind!r}", KIND_HELP)


def build_judge(
    kind: str,
    model: LanguageModel,
    models: list[LanguageModel] | None = None,
    decider: LanguageModel | None = None,
    opponent: LanguageModel | None = None,
    **options: object,
) -> object:
    """A judge from a kind string and options (see `JudgeConfig`); raises ConfigError on bad input."""
    try:
        config = JudgeConfig(kind=kind, **options)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ConfigError(
            f"bad judge options: {problems}", f"allowed options: {sorted(JudgeConfig.model_fields)}"
        ) from exc
    name = kind.split(":")[0]
    sampling = config.sampling()
    if name == "rubric":
        return _rubric(model, config, config.persona, sampling)
    if name == "pairwise":
        return _pairwise(model, config, config.persona, sampling)
    if name == "likelihood":
        return _likelihood(model, config, config.persona)
    if name == "debate":
        return DebateJudge(
            model,
            opponent=opponent,
            decider=decider,
            rounds=config.rounds,
            scale=config.scale or (1, 5),
            use_reference=config.use_reference,
        )
    if name == "meta":
        return MetaJudge(
            model,
            template=config.template or "meta",
            persona=config.persona,
            sampling=sampling,
            both_orders=config.both_orders,
            on_disagree=config.on_disagree,
            use_reference=config.use_reference,
            direct=config.direct,
        )
    if name == "jury":
        return build_jury(kind, model, config, models)
    raise ConfigError(f"unknown judge kind {kind!r}", KIND_HELP)
