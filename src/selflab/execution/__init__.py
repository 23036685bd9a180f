"""Pluggable execution: run units of work (episodes, sample groups, judge batches) in process or on
Ray workers with the same records. See `base.map_units` and docs/gpu-and-clusters.md."""

from selflab.execution.base import (
    Executor,
    PerUnit,
    UnitFailure,
    UnitResult,
    map_units,
    run_chunk,
    unit_key,
    unit_seed,
)
from selflab.execution.config import ExecutorConfig, from_cli, make_executor
from selflab.execution.local import LocalExecutor

__all__ = [
    "Executor",
    "ExecutorConfig",
    "LocalExecutor",
    "PerUnit",
    "UnitFailure",
    "UnitResult",
    "from_cli",
    "make_executor",
    "map_units",
    "run_chunk",
    "unit_key",
    "unit_seed",
]
