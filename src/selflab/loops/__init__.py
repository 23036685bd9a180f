"""Self-improvement loops over run directories, and the truth meter that keeps them honest.

`base.Loop` is the framework (stages per iteration, resume, registry); `truth_meter` records
self-reward next to objective measures every iteration; `measures` holds stage helpers any loop
reuses; each other module defines one loop and registers it with `@register_loop`.
"""

from selflab.loops.base import Loop, LoopConfig, StageContext, get_loop, list_loops, open_run, register_loop
from selflab.loops.truth_meter import IterationMetrics, Measurement, TruthMeter, read_metrics

__all__ = [
    "IterationMetrics",
    "Loop",
    "LoopConfig",
    "Measurement",
    "StageContext",
    "TruthMeter",
    "get_loop",
    "list_loops",
    "open_run",
    "read_metrics",
    "register_loop",
]
