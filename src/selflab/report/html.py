"""`report.html` for any run directory, rendered from `runs/` data alone.

The metric rows' `kind` picks the sections: loop iterations (truth meter), games, the judge
benchmark, probes; rows of a kind this version does not know are shown as JSON, never dropped.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Any

from selflab.report.bench import bench_report
from selflab.report.common import (
    config_section,
    esc,
    flatten,
    fmt_value,
    header,
    stages_section,
    table,
    write_html,
)
from selflab.report.games import games_report
from selflab.report.loops import loop_report
from selflab.report.probes import probes_report
from selflab.runs import RunDir, read_rows
from selflab.runs.metrics import (
    GameMetrics,
    IterationMetrics,
    JudgeBenchMetrics,
    OtherMetrics,
    ProbeMetrics,
    rows_of,
)


def _latest(rows: list[Any], key: Callable[[Any], Hashable]) -> list[Any]:
    last = {key(r): r for r in rows}
    return [r for r in rows if last[key(r)] is r]


def _other(rows: list[OtherMetrics]) -> list[str]:
    """Rows of kinds without a dedicated section: every number (intervals formatted), per kind."""
    parts = []
    for kind in dict.fromkeys(r.kind for r in rows if r.kind != "run_finished"):
        last = [r for r in rows if r.kind == kind][-1].model_dump(mode="json")
        leaves = [(k, fmt_value(v)) for k, v in flatten(last) if k != "kind"][:300]
        parts.append(f"<h2>{esc(kind.replace('_', ' '))}</h2>" + table(["key", "value"], leaves))
    return parts


def render(run: RunDir) -> str:
    """The report page of a run as an HTML string."""
    rows = read_rows(run)
    if rows_of(rows, IterationMetrics) or (run.path / "loop_config.json").is_file():
        return "\n".join(p for p in loop_report(run) if p)
    kinds = [r.kind for r in rows if r.kind != "run_finished"]
    title = str(run.meta.get("command") or (kinds[0].replace("_", " ") if kinds else "run")).removeprefix(
        "selflab "
    )
    parts = header(run, title)
    # a resumed run appends its rows again: the last row per (kind, command, env) is current
    parts += games_report(run, _latest(rows_of(rows, GameMetrics), lambda r: (r.command, r.env_id)))
    parts += bench_report(run, _latest(rows_of(rows, JudgeBenchMetrics), lambda r: r.kind))
    parts += probes_report(run, _latest(rows_of(rows, ProbeMetrics), lambda r: r.kind))
    parts += _other(rows_of(rows, OtherMetrics))
    if len(parts) == 4:
        parts.append("<p>No metrics recorded yet.</p>")
    parts += [stages_section(run), config_section(run)]
    return "\n".join(p for p in parts if p)


def write_report(run: RunDir | str | Path) -> Path:
    """Write `report.html` in the run directory; returns its path."""
    run = run if isinstance(run, RunDir) else RunDir.open(run)
    return write_html(run, [render(run)])
