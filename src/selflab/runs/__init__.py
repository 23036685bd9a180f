"""Run directories: config snapshot, append-only records, Parquet exports, resumable stages."""

from selflab.runs.records import RecordLog
from selflab.runs.rundir import RunDir, Stage, scrub_secrets

__all__ = ["RecordLog", "RunDir", "Stage", "scrub_secrets"]
