"""`report.html` for any run directory, rendered from `runs/` data alone.

The metric rows' `kind` picks the sections: loop iterations (truth meter), games, the judge
benchmark, probes; rows of a kind this version does not know are shown as JSON, never dropped.
"""

from __future__ import annotations

import json
from pathlib import Path

from selflab.report.bench import bench_report
from selflab.report.common import config_section, esc, header, stages_section, write_html
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


def render(run: RunDir) -> str:
    """The report page of a run as an HTML string."""
    rows = read_rows(run)
    if rows_of(rows, IterationMetrics) or (run.path / "loop_config.json").is_file():
        return "\n".join(p for p in loop_report(run) if p)
    title = str(run.meta.get("command") or "run").removeprefix("selflab ")
    parts = header(run, title)
    parts += games_report(run, rows_of(rows, GameMetrics))
    parts += bench_report(run, rows_of(rows, JudgeBenchMetrics))
    parts += probes_report(run, rows_of(rows, ProbeMetrics))
    other = [r for r in rows_of(rows, OtherMetrics) if r.kind != "run_finished"]
    if other:
        dumped = "\n".join(json.dumps(r.model_dump(mode="json"), default=str)[:2000] for r in other)
        parts.append(f"<h2>Other metric rows</h2><pre>{esc(dumped)}</pre>")
    if len(parts) == 4:
        parts.append("<p>No metrics recorded yet.</p>")
    parts += [stages_section(run), config_section(run)]
    return "\n".join(p for p in parts if p)


def write_report(run: RunDir | str | Path) -> Path:
    """Write `report.html` in the run directory; returns its path."""
    run = run if isinstance(run, RunDir) else RunDir.open(run)
    return write_html(run, [render(run)])
