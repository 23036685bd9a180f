"""The probes report: layer curves, generalisation heatmaps and best-of-N bars (the PNGs the
probe commands save), with every interval from the command's summary in a table."""

from __future__ import annotations

from selflab.report.common import flatten, fmt_value, image_file, table
from selflab.runs import RunDir
from selflab.runs.metrics import ProbeMetrics

TITLES = {
    "probe_sweep": "Truth probes per layer",
    "probe_generalize": "Generalisation across datasets",
    "probe_guided": "Probe-guided best-of-N",
}


def probes_report(run: RunDir, rows: list[ProbeMetrics]) -> list[str]:
    parts: list[str] = []
    for row in rows:
        parts.append(f"<h2>{TITLES.get(row.kind, row.kind)}</h2>")
        pngs = row.plots or sorted(p.name for p in run.path.glob("*.png"))
        parts += [image_file(run.path / name) for name in pngs if name.endswith(".png")]
        leaves = [(k, v) for k, v in flatten(row.summary) if not isinstance(v, list) or len(v) <= 12]
        parts.append(
            "<details><summary>all numbers</summary>"
            + table(["key", "value"], [[k, fmt_value(v)] for k, v in leaves])
            + "</details>"
        )
    return parts
