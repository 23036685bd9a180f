"""Judge benchmark units on an executor's workers (e.g. Ray): the hook behind
`run_bench(..., executor=...)` and `selflab bench judges --executor ray`.

Each worker builds the judge from its kind string and the model from `config.model` (a spec
string), judges a chunk of units in one batched call, and returns one record per unit; the driver
alone writes `records/judgments.jsonl`. Judges seed their samples by sample index, not by batch
position, so the records do not depend on how units are chunked. A unit whose worker kept dying
gets a record with `parse_error` set (never a score).
"""

from __future__ import annotations

from typing import Any

from selflab.evalbench.config import BenchConfig
from selflab.evalbench.judging import JudgmentRecord, make_judge, run_judge
from selflab.evalbench.units import Unit
from selflab.execution import Executor, map_units


class JudgeChunk:
    """The unit function shipped to workers: judge a list of units with `kind` on `config.model`."""

    def __init__(self, kind: str, config: BenchConfig) -> None:
        self.kind, self.config = kind, config

    def __call__(self, units: list[Unit]) -> list[JudgmentRecord | None]:
        from selflab.models import load_model

        judge = make_judge(self.kind, load_model(self.config.model), self.config)
        by_id = {r.unit.id: r for r in run_judge(judge, units)}
        return [by_id.get(u.id) for u in units]  # None: the judge does not handle this protocol


def run_judge_on(
    executor: Executor | None, kind: str, judge: Any, units: list[Unit], config: BenchConfig
) -> list[JudgmentRecord]:
    """`run_judge(judge, units)` in process, or the same records computed on `executor`'s workers
    (in the same order: pointwise units first, then pairs)."""
    if executor is None or executor.in_process:
        return run_judge(judge, units)
    results = map_units(units, JudgeChunk(kind, config), executor, key=lambda u: u.id)
    out: dict[str, list[JudgmentRecord]] = {"pointwise": [], "pairwise": []}
    for unit, r in zip(units, results, strict=True):
        if r.ok and r.value is not None:
            out[unit.mode].append(r.value)
        elif not r.ok:
            name = getattr(judge, "name", kind)
            out[unit.mode].append(
                JudgmentRecord(judge=name, unit=unit, parse_error=f"worker failure: {r.error}")
            )
    return out["pointwise"] + out["pairwise"]
