"""Typed rows of `metrics.jsonl`, told apart by one discriminator: `kind`.

Why here: every producer (loops, games, the judge benchmark, probes) writes metric rows, and
`report/` and `view/` read them. Owning the types in `runs/` lets the readers depend on `runs/`
alone, never on the producers. Rows written before the discriminator existed (`"type": ...` or
`"stage": "play"`) are read through `upgrade_legacy`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from selflab.runs.rundir import RunDir
from selflab.stats import Estimate, PairedTest

MeasureKind = Literal["self_reward", "objective", "drift"]
Verdict = Literal["baseline", "improving", "flat", "hacking", "regressing"]


class MetricSummary(BaseModel):
    """One metric of one loop iteration: estimate, paired tests against iteration 0 and the previous."""

    name: str
    kind: MeasureKind
    estimate: Estimate
    missing: int = 0
    higher_is_better: bool = True
    optimised: bool = False
    primary: bool = False
    description: str = ""
    vs_baseline: PairedTest | None = None
    vs_previous: PairedTest | None = None


class _Row(BaseModel):
    model_config = ConfigDict(extra="allow")


class IterationMetrics(_Row):
    """A loop's truth-meter line for one iteration. `verdict` is the meter's one-word reading
    (improving / flat / hacking / regressing), shown at the top of the loop report."""

    kind: Literal["iteration_metrics"] = "iteration_metrics"
    loop: str
    iteration: int
    model: str
    metrics: dict[str, MetricSummary] = Field(default_factory=dict)
    info: dict[str, float | int | str | None] = Field(default_factory=dict)
    verdict: Verdict | None = None
    verdict_reason: str = ""


class RunFinished(_Row):
    """Written when a session of a run ends; `wall_s` is that session's wall time."""

    kind: Literal["run_finished"] = "run_finished"
    wall_s: float | None = None


class AgentResult(BaseModel):
    """One agent over all the seats it played."""

    agent: str
    seats: int
    wins: int
    win_rate: Estimate
    mean_reward: float = 0.0
    invalid_rate: float = 0.0
    defaults: int = 0
    mean_turns: float = 0.0
    elo: float | None = None
    trueskill_mu: float | None = None
    trueskill_sigma: float | None = None


class PairResult(BaseModel):
    """Head to head between two agents: decided games and an exact two-sided binomial test."""

    a: str
    b: str
    episodes: int
    a_wins: int
    b_wins: int
    p_value: float | None = None


class GameMetrics(_Row):
    """Games played by `selflab play`, `tournament` or `baselines` (one row per env)."""

    kind: Literal["games"] = "games"
    command: str
    env_id: str
    episodes: int
    agents: list[AgentResult] = Field(default_factory=list)
    pairs: list[PairResult] = Field(default_factory=list)
    wall_s: float | None = None
    info: dict[str, Any] = Field(default_factory=dict)


class JudgeBenchMetrics(_Row):
    """`selflab bench judges`: per judge a dict of metric name -> Estimate (or nested dicts of
    them, e.g. flip rates per perturbation), and the majority-vote study."""

    kind: Literal["bench_judges"] = "bench_judges"
    n_items: int = 0
    n_units: int = 0
    elapsed_s: float | None = None
    judges: dict[str, dict[str, Any]] = Field(default_factory=dict)
    majority: dict[str, Any] | None = None
    perturbations: list[str] = Field(default_factory=list)


class ProbeMetrics(_Row):
    """`selflab probe sweep|generalize|guided`: the command's summary (layer curves, AUC matrices,
    best-of-N accuracies) and the names of the plots it saved in the run directory."""

    kind: Literal["probe_sweep", "probe_generalize", "probe_guided"]
    summary: dict[str, Any] = Field(default_factory=dict)
    plots: list[str] = Field(default_factory=list)


class OtherMetrics(_Row):
    """A row of a kind this version does not know (a newer producer): kept, shown as JSON."""

    kind: str


MetricRow = Annotated[
    IterationMetrics | RunFinished | GameMetrics | JudgeBenchMetrics | ProbeMetrics,
    Field(discriminator="kind"),
]
_ADAPTER: TypeAdapter[Any] = TypeAdapter(MetricRow)
KNOWN_KINDS = {"iteration_metrics", "run_finished", "games", "bench_judges"} | {
    "probe_sweep",
    "probe_generalize",
    "probe_guided",
}


def upgrade_legacy(d: dict[str, Any]) -> dict[str, Any]:
    """Rows written before `kind`: `{"type": ...}` (loops) and `{"stage": "play"}` (play)."""
    if "kind" in d:
        return d
    if "type" in d:
        return {"kind": d["type"], **{k: v for k, v in d.items() if k != "type"}}
    if d.get("stage") == "play":
        return {"kind": "play_legacy", **d}
    return {"kind": "unknown", **d}


def parse_row(d: dict[str, Any]) -> MetricRow | OtherMetrics:
    """A typed row from a dict; an unknown or invalid row becomes `OtherMetrics` (never a crash)."""
    d = upgrade_legacy(d)
    if d.get("kind") in KNOWN_KINDS:
        try:
            return _ADAPTER.validate_python(d)
        except ValidationError:
            pass
    return OtherMetrics.model_validate({**d, "kind": str(d.get("kind"))})


def read_rows(run: RunDir) -> list[MetricRow | OtherMetrics]:
    """Every row of the run's metrics.jsonl, typed, in file order."""
    return [parse_row(d) for d in run.metrics.iter_dicts()]


def rows_of(rows: Iterable[Any], cls: type[Any]) -> list[Any]:
    return [r for r in rows if isinstance(r, cls)]


def read_metrics(run: RunDir) -> list[IterationMetrics]:
    """A loop's iteration rows (the last one per iteration wins, for resumed runs)."""
    latest: dict[int, IterationMetrics] = {}
    for r in read_rows(run):
        if isinstance(r, IterationMetrics):
            latest[r.iteration] = r
    return [latest[k] for k in sorted(latest)]
