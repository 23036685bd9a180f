"""One evaluation object, in the spirit of inspect_ai's Task: datasets of verifiable tasks, the
sampling settings that answer them, and scorers that each declare the metrics they produce.

Every loop's evaluate stage and `selflab eval` build an `Evaluation` and run it:

```python
ev = Evaluation(
    name="heldout",
    datasets={"heldout": heldout_tasks, "control": arithmetic_tasks},
    sampling=SamplingParams(temperature=0.0, max_new_tokens=80),
    scorers=[Verified("heldout", "heldout_pass_rate"), Verified("control", "control_arithmetic_accuracy"),
             SelfJudged("heldout"), Length("heldout")],
)
result = ev.run(model, seed=7)     # one batched generate call for all datasets, then the scorers
result.measurements                # truth-meter Measurements, in scorer order, with item ids
result.records                     # what to log: answers (judged where a scorer judged them), extras
```

Scorers run in order and may replace a dataset's answers (the self-judge adds its judgments),
so a later scorer sees them. A scorer with `dataset=None` brings its own items (the judge
benchmark). `standard_evaluation` builds the held-out panel the self-judging loops share.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, Field

from selflab.judges.fence import FenceMode
from selflab.loops import judging
from selflab.loops.base import Loop, LoopConfig, StageContext
from selflab.loops.benchmark import BenchPair, BenchUnit, bench_measures, bench_slice, judge_bench
from selflab.loops.measures import Answer, judge_agreement, length, pass_rate, sample_answers, verify_answers
from selflab.loops.truth_meter import Measurement
from selflab.models.types import LanguageModel, SamplingParams
from selflab.tasks import Task
from selflab.tasks.splits import TopicPool, split_tasks


class ScoreOutput(BaseModel):
    measurements: list[Measurement] = Field(default_factory=list)
    records: list[Any] = Field(default_factory=list)
    answers: list[Answer] | None = None  # replaces the dataset's answers when set


class Scorer(ABC):
    """Turns a dataset's answers (or its own items) into measurements with declared names.
    Subclasses set `dataset`: the name of the dataset they score, or None (own items)."""

    dataset: str | None

    @abstractmethod
    def metrics(self) -> list[str]:
        """The measurement names this scorer produces (declared before it runs)."""

    @abstractmethod
    def score(self, model: LanguageModel, answers: list[Answer], seed: int) -> ScoreOutput: ...


@dataclass
class Verified(Scorer):
    """Code-verifier pass rate of a dataset's answers."""

    dataset: str
    metric: str
    description: str = "verifier pass rate, greedy, on held-out items"
    optimised: bool = False
    primary: bool = False

    def metrics(self) -> list[str]:
        return [self.metric]

    def score(self, model: LanguageModel, answers: list[Answer], seed: int) -> ScoreOutput:
        m = pass_rate(self.metric, answers, self.description, self.optimised, self.primary)
        return ScoreOutput(measurements=[m])


@dataclass
class SelfJudged(Scorer):
    """The model's own rubric judge on a dataset's answers: the self-reward, and (with
    `agreement`) how often the self-judge agrees with the verifier."""

    dataset: str
    samples: int = 1
    max_new_tokens: int = 4
    template: str = "rubric_additive"
    reasoning: bool = False
    agreement: bool = True
    optimised: bool = False
    fence: FenceMode = "none"

    def metrics(self) -> list[str]:
        return ["self_reward", "self_judge_agreement"] if self.agreement else ["self_reward"]

    def score(self, model: LanguageModel, answers: list[Answer], seed: int) -> ScoreOutput:
        from selflab.loops.measures import self_reward

        judged = judging.judge_answers(
            model,
            answers,
            self.samples,
            seed,
            self.max_new_tokens,
            self.template,
            reasoning=self.reasoning,
            fence=self.fence,
        )
        ms = [self_reward(judged, optimised=self.optimised)]
        if self.agreement:
            ms.append(judge_agreement(judged))
        return ScoreOutput(measurements=ms, answers=list(judged))


@dataclass
class Length(Scorer):
    """Completion tokens per answer (length drift)."""

    dataset: str
    metric: str = "response_tokens"

    def metrics(self) -> list[str]:
        return [self.metric]

    def score(self, model: LanguageModel, answers: list[Answer], seed: int) -> ScoreOutput:
        return ScoreOutput(measurements=[length(answers, self.metric)])


@dataclass
class JudgeBench(Scorer):
    """The model as a rubric judge on held-out judge-benchmark candidates of verified truth."""

    units: list[BenchUnit]
    pairs: list[BenchPair]
    max_new_tokens: int = 4
    template: str = "rubric_additive"
    reasoning: bool = False
    fence: FenceMode = "none"
    dataset: None = None

    def metrics(self) -> list[str]:
        if not self.units:
            return []
        return ["judge_bench_accuracy", "judge_bench_balanced_accuracy"] + (
            ["judge_bench_pair_accuracy"] if self.pairs else []
        )

    def score(self, model: LanguageModel, answers: list[Answer], seed: int) -> ScoreOutput:
        judged = judge_bench(
            model, self.units, self.max_new_tokens, self.template, self.reasoning, self.fence
        )
        return ScoreOutput(measurements=bench_measures(judged, self.pairs), records=list(judged))


@dataclass
class GameWinRate(Scorer):
    """Games against FIXED opponents (scripted or random agents of the game), greedy, same seeds
    for every model, seats rotated: the win rate per opponent and over all of them."""

    env_id: str
    opponents: list[str]
    episodes: int = 8
    seed: int = 0
    max_new_tokens: int = 24
    context_tokens: int = 1024
    dataset: None = None

    def metrics(self) -> list[str]:
        return [f"win_rate_vs_{o}" for o in self.opponents] + ["win_rate_fixed_opponents"]

    def score(self, model: LanguageModel, answers: list[Answer], seed: int) -> ScoreOutput:
        from selflab.envs.llm_agent import LLMAgent
        from selflab.envs.registry import make_agent
        from selflab.envs.runner import play, schedule

        plan = {
            o: schedule(self.env_id, ["player", o], self.episodes, seed=self.seed, prefix=f"eval-{o}-")
            for o in self.opponents
        }

        def factory(e: Any) -> list[Any]:
            return [
                LLMAgent(model, seed=e.seed * 1000 + k, name=name, temperature=0.0, top_p=1.0,
                         max_new_tokens=self.max_new_tokens, context_tokens=self.context_tokens)
                if name == "player"
                else make_agent(e.env_id, name, seed=e.seed * 1000 + k)
                for k, name in enumerate(e.agents)
            ]  # fmt: skip

        specs = [e for eps in plan.values() for e in eps]
        by_id = {
            ep.episode_id: ep for ep in play(specs, concurrency=len(specs), agent_factory=factory).episodes
        }

        def won(ep: Any) -> bool:
            return ep.agents.index("player") in ep.winners

        ms = []
        every = []
        for o, eps in plan.items():
            done = [by_id[e.episode_id] for e in eps]
            every += done
            ms.append(
                Measurement(
                    name=f"win_rate_vs_{o}",
                    kind="objective",
                    values=[won(ep) for ep in done],
                    ids=[ep.episode_id for ep in done],
                    description=f"{self.env_id}: games won against the fixed '{o}' opponent (seats rotated)",
                )
            )
        ms.append(
            Measurement(
                name="win_rate_fixed_opponents",
                kind="objective",
                values=[won(ep) for ep in every],
                ids=[ep.episode_id for ep in every],
                description=f"{self.env_id}: games won against all fixed opponents",
            )
        )
        return ScoreOutput(measurements=ms, records=every)


class EvalResult(BaseModel):
    measurements: list[Measurement]
    records: list[Any]
    answers: dict[str, list[Answer]]


@dataclass
class Evaluation:
    """Datasets + sampling + scorers (see the module docstring)."""

    name: str
    datasets: dict[str, list[Task]]
    sampling: SamplingParams
    scorers: list[Scorer] = field(default_factory=list)

    def metrics(self) -> list[str]:
        return [m for s in self.scorers for m in s.metrics()]

    def tasks(self) -> list[Task]:
        return [t for ts in self.datasets.values() for t in ts]

    def run(self, model: LanguageModel, seed: int = 0) -> EvalResult:
        """Answer every dataset in ONE generate call (request i gets sampling seed i, so a rerun
        reproduces it), verify by code, then run the scorers in order, each with `seed`."""
        tasks = self.tasks()
        answers = verify_answers(tasks, sample_answers(model, tasks, 1, self.sampling, 0)) if tasks else []
        by_set: dict[str, list[Answer]] = {}
        start = 0
        for name, ts in self.datasets.items():
            by_set[name] = answers[start : start + len(ts)]
            start += len(ts)
        ms: list[Measurement] = []
        extra: list[Any] = []
        for scorer in self.scorers:
            out = scorer.score(model, by_set.get(scorer.dataset, []) if scorer.dataset else [], seed)
            if out.answers is not None and scorer.dataset:
                by_set[scorer.dataset] = out.answers
            ms += out.measurements
            extra += out.records
        records: list[Any] = [a for v in by_set.values() for a in v]
        return EvalResult(measurements=ms, records=records + extra, answers=by_set)


def verified_panel(
    heldout: list[Task], control: list[Task], control_metric: str, heldout_description: str
) -> tuple[dict[str, list[Task]], list[Scorer]]:
    """The datasets and scorers of a verifier-trained loop's truth meter: held-out pass rate
    (primary) and, when there are control tasks, the untrained family's accuracy."""
    sets = {"heldout": heldout}
    scorers: list[Scorer] = [Verified("heldout", "heldout_pass_rate", heldout_description, primary=True)]
    if control:
        sets["control"] = control
        scorers.append(Verified("control", control_metric, "untrained task family (regressions)"))
    return sets, scorers


# -- the standard held-out panel of the self-judging loops ---------------------------------------


class EvalConfig(LoopConfig):
    """Settings of the standard held-out evaluation (and of the self-judge) that every
    self-judging loop shares."""

    judge_template: str = Field("rubric_additive", description="rubric template of the self-judge")
    judge_samples: int = Field(3, ge=1, description="k judgments per response, averaged (paper: 3)")
    judge_temperature: float = Field(0.7, ge=0.0, description="used when judge_samples > 1")
    judge_max_new_tokens: int = Field(4, ge=1)
    judge_reasoning: bool = Field(
        False, description="let the judge explain before its score (slow; a 135M model rarely parses)"
    )
    judge_fence: FenceMode = Field(
        "none",
        description="injection fence of the self-judge: none (default; fenced, the 135M judge scores "
        "every answer 0) | boundary | datamark",
    )
    eval_tasks: int = Field(40, ge=2, description="held-out instruction tasks (held-out topics)")
    control_tasks: int = Field(20, ge=0, description="held-out arithmetic tasks (another family)")
    heldout_topic_fraction: float = Field(0.3, gt=0.0, lt=1.0)
    topics: TopicPool = Field("all", description="instruction topic pool: all (40 topics) or v1 (8)")
    eval_max_new_tokens: int = Field(64, ge=8)
    bench_items: int = Field(16, ge=0, description="held-out judge-benchmark items (3 candidates each)")


def heldout_sets(seed_eval: int, seed_control: int, cfg: EvalConfig) -> dict[str, list[Task]]:
    """Held-out instruction tasks (held-out topics) and held-out arithmetic: fixed for the run."""
    sets = {
        "heldout": split_tasks(
            "instructions", cfg.eval_tasks, seed_eval, True, cfg.heldout_topic_fraction, topics=cfg.topics
        )
    }
    if cfg.control_tasks:
        sets["control"] = split_tasks("arithmetic", cfg.control_tasks, seed_control, True, 0.5)
    return sets


def standard_evaluation(
    seed_eval: int, seed_control: int, cfg: EvalConfig, self_reward_optimised: bool = False
) -> Evaluation:
    """The truth-meter panel the self-judging loops share: held-out verifier pass rates, the
    self-reward and its agreement with the verifier, judge-benchmark accuracy, length."""
    sets = heldout_sets(seed_eval, seed_control, cfg)
    scorers: list[Scorer] = [
        Verified(
            "heldout",
            "heldout_pass_rate",
            "verifier pass rate, greedy, instruction tasks on held-out topics",
            primary=True,
        )
    ]
    if "control" in sets:
        scorers.append(
            Verified("control", "control_arithmetic_accuracy", "held-out arithmetic, checked by code")
        )
    scorers.append(
        SelfJudged(
            "heldout",
            max_new_tokens=cfg.judge_max_new_tokens,
            template=cfg.judge_template,
            reasoning=cfg.judge_reasoning,
            optimised=self_reward_optimised,
            fence=cfg.judge_fence,
        )
    )
    units, pairs = bench_slice(cfg.bench_items, cfg.heldout_topic_fraction)
    if units:
        scorers.append(
            JudgeBench(
                units,
                pairs,
                cfg.judge_max_new_tokens,
                cfg.judge_template,
                cfg.judge_reasoning,
                cfg.judge_fence,
            )
        )
    scorers.append(Length("heldout"))
    return Evaluation(
        name="heldout",
        datasets=sets,
        sampling=SamplingParams(temperature=0.0, max_new_tokens=cfg.eval_max_new_tokens),
        scorers=scorers,
    )


def evaluate_standard(
    loop: Loop, ctx: StageContext, cfg: EvalConfig, self_reward_optimised: bool = False
) -> list[Measurement]:
    """Run `standard_evaluation` on the model after `ctx.iteration`; log its records to the stage."""
    ev = standard_evaluation(loop.seed_for("eval"), loop.seed_for("control"), cfg, self_reward_optimised)
    return loop.run_evaluation(ctx, ev, loop.model_after(ctx.iteration)).measurements
