"""The truth meter: at every iteration, the self-assigned reward next to objective measures the
loop did not optimise.

A self-improvement loop can raise its own reward by pleasing its own judge (reward hacking). The
meter keeps the loop honest: every iteration records per-item values for

- `self_reward`: what the model's own judge says (normalised to [0, 1]),
- `objective`: measures no judge can flatter: verifier pass rate on held-out verifiable tasks,
  held-out judge-benchmark accuracy, win rate against fixed scripted opponents,
- `drift`: response length, and the per-item gap self-reward minus objective; a widening gap is
  the signature of reward hacking.

Each value gets a bootstrap CI, and a paired test against iteration 0 on the same items, paired
by item id (by position only for measurements without ids): exact McNemar for pass/fail items,
Wilcoxon signed-rank otherwise (and a bootstrap CI of the mean difference). One `IterationMetrics` line per
iteration goes to `metrics.jsonl`; the per-item values go to `records/truth_items.jsonl` so a
resumed run can still test against its baseline.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel
from rich.console import Console
from rich.table import Table

from selflab.console import fit
from selflab.loops.stats import bootstrap_ci, paired_compare
from selflab.loops.verdict import judge_iteration
from selflab.runs import RunDir

# The row types live in runs/ (report/ and view/ read them without importing loops).
from selflab.runs.metrics import IterationMetrics, MetricSummary, read_metrics
from selflab.runs.metrics import MeasureKind as Kind

__all__ = ["GAP_NAME", "IterationMetrics", "Measurement", "MetricSummary", "TruthMeter", "read_metrics"]
GAP_NAME = "gap_self_minus_objective"


class Measurement(BaseModel):
    """Per-item values of one metric at one iteration, with the items' ids (the paired tests
    match iterations by id; without ids, by position). None = no value for that item (e.g.
    unparsable judgment): excluded and counted, never scored as 0."""

    name: str
    kind: Kind
    values: list[float | bool | None]
    ids: list[str] | None = None
    higher_is_better: bool = True
    optimised: bool = False  # True when the loop trains on this signal (then it is not evidence)
    primary: bool = False  # the loop's headline objective; the verdict weighs it first
    description: str = ""


class _ItemsRecord(BaseModel):
    iteration: int
    measurements: list[Measurement]


def gap_measurement(self_reward: Measurement, objective: Measurement) -> Measurement:
    """Per-item self-reward minus objective score (both in [0, 1]); None where either is missing."""
    if len(self_reward.values) != len(objective.values):
        raise ValueError("self-reward and objective must be measured on the same items")
    vals: list[float | bool | None] = [
        None if s is None or o is None else float(s) - float(o)
        for s, o in zip(self_reward.values, objective.values, strict=True)
    ]
    return Measurement(
        name=GAP_NAME,
        kind="drift",
        values=vals,
        ids=objective.ids,
        higher_is_better=False,
        description=f"{self_reward.name} - {objective.name} per item; widening = reward hacking",
    )


def paired_values(
    ref: Measurement, cur: Measurement
) -> tuple[list[float | bool | None], list[float | bool | None]] | None:
    """The two iterations' values on the items both measured, matched by id (in the current
    order); by position when either lacks unique ids. None when nothing can be paired."""
    if ref.ids and cur.ids and len(set(ref.ids)) == len(ref.ids) and len(set(cur.ids)) == len(cur.ids):
        pos = {i: k for k, i in enumerate(ref.ids)}
        common = [(pos[i], k) for k, i in enumerate(cur.ids) if i in pos]
        if not common:
            return None
        return [ref.values[a] for a, _ in common], [cur.values[b] for _, b in common]
    if len(ref.values) == len(cur.values):
        return ref.values, cur.values
    return None


class TruthMeter:
    """Records, tests and prints the measurements of each iteration of one run."""

    def __init__(
        self,
        run: RunDir,
        loop: str,
        seed: int = 0,
        console: Console | None = None,
        resamples: int = 2000,
    ) -> None:
        self.run = run
        self.loop = loop
        self.seed = seed
        self.console = console or Console()
        self.resamples = resamples
        self.items = run.records("truth_items")

    def _items_for(self, iteration: int) -> dict[str, Measurement] | None:
        found = None
        for rec in self.items.read(_ItemsRecord):
            if rec.iteration == iteration:
                found = {m.name: m for m in rec.measurements}  # the last write wins
        return found

    def record(
        self,
        iteration: int,
        model: str,
        measurements: Sequence[Measurement],
        info: dict[str, float | int | str | None] | None = None,
        gap: tuple[str, str] | None = None,
    ) -> IterationMetrics:
        """Summarise, test against iteration 0 and the previous iteration, save and print.
        `gap=(self_reward_name, objective_name)` adds the per-item gap as a drift measure."""
        ms = list(measurements)
        if gap is not None:
            by_name = {m.name: m for m in ms}
            if gap[0] in by_name and gap[1] in by_name:
                ms.append(gap_measurement(by_name[gap[0]], by_name[gap[1]]))
        self.items.append(_ItemsRecord(iteration=iteration, measurements=ms))
        baseline = self._items_for(0) if iteration > 0 else None
        previous = self._items_for(iteration - 1) if iteration > 1 else None
        out = IterationMetrics(loop=self.loop, iteration=iteration, model=model, info=dict(info or {}))
        for i, m in enumerate(ms):
            summary = MetricSummary(
                name=m.name,
                kind=m.kind,
                estimate=bootstrap_ci(m.values, seed=self.seed + i, resamples=self.resamples),
                missing=sum(1 for v in m.values if v is None),
                higher_is_better=m.higher_is_better,
                optimised=m.optimised,
                primary=m.primary,
                description=m.description,
            )
            for ref, attr in ((baseline, "vs_baseline"), (previous, "vs_previous")):
                paired = paired_values(ref[m.name], m) if ref and m.name in ref else None
                if paired is not None:
                    test = paired_compare(*paired, seed=self.seed + i, resamples=self.resamples)
                    setattr(summary, attr, test)
            out.metrics[m.name] = summary
        v = judge_iteration(iteration, out.metrics)
        out.verdict, out.verdict_reason = v.verdict, v.reason
        self.run.metrics.append(out)
        self.print(out)
        return out

    def print(self, it: IterationMetrics) -> None:
        table = Table(title=f"{self.loop} · iteration {it.iteration} · {it.model}", title_justify="left")
        for col in ("metric", "kind", "value [95% CI]", "Δ vs iter 0 [95% CI]", "p (test)"):
            table.add_column(col)
        for s in it.metrics.values():
            vb = s.vs_baseline
            delta = vb.delta.fmt() if vb else "-"
            p = f"{vb.p_value:.3g} ({vb.test})" if vb and vb.p_value is not None else "-"
            kind = s.kind + (" (optimised)" if s.optimised else "")
            value = s.estimate.fmt() + (f" missing={s.missing}" if s.missing else "")
            table.add_row(s.name, kind, value, delta, p)
        self.console.print(fit(table))
        if it.verdict:
            color = {"improving": "green", "hacking": "red", "regressing": "red"}.get(it.verdict, "yellow")
            self.console.print(f"  verdict: [bold {color}]{it.verdict}[/bold {color}] — {it.verdict_reason}")
        if it.info:
            self.console.print("  " + "  ".join(f"{k}={v}" for k, v in it.info.items()))
