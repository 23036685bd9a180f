"""Run directories: config snapshot, append-only records, typed metric rows, resumable stages."""

from selflab.runs.metrics import MetricRow, parse_row, read_metrics, read_rows
from selflab.runs.records import RecordLog
from selflab.runs.rundir import RunDir, Stage, scrub_secrets

__all__ = [
    "MetricRow",
    "RecordLog",
    "RunDir",
    "Stage",
    "parse_row",
    "read_metrics",
    "read_rows",
    "scrub_secrets",
]
