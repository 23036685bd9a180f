"""Pick torch's CPU thread count for decoding by measurement, not by assumption.

On a machine whose cores are shared with other busy processes, a multi-threaded OpenMP matmul waits at
its barrier for a thread the OS has not scheduled: a decode-sized matmul then takes ~60 ms instead of
~1 ms (measured on the 2-core dev box under load). One thread is immune to that. When the machine is
idle, more threads are faster. So the engine times a decode-sized matmul both ways every so often and
keeps the faster setting. This changes torch's process-wide setting (torch has no per-thread one);
pass `threads=N` to `BatchingEngine` to pin it instead, or `threads=None` to leave torch alone.
"""

from __future__ import annotations

import time

import torch

# torch's own default (physical cores), read before any engine changes it.
TORCH_DEFAULT_THREADS = torch.get_num_threads()
# Matmuls per timing run (a decode step of the embedded model has ~210).
_OPS = 24
# Timing runs per setting (the best counts).
_RUNS = 5
# Re-measure after this much engine busy time: contention comes and goes.
_EVERY_S = 30.0


def _time_ops(op, count: int, budget_s: float) -> float:
    """Seconds for `count` back-to-back ops (like the small matmuls of one decode step), or inf as
    soon as the budget is exceeded (a stalled thread barrier makes this slow; no need to wait it out)."""
    start = time.perf_counter()
    for _ in range(count):
        op()
        if time.perf_counter() - start > budget_s:
            return float("inf")
    return time.perf_counter() - start


class ThreadTuner:
    """Chooses between 1 thread and `max_threads` for CPU inference by timing both."""

    def __init__(self, max_threads: int | None = None, hidden: int = 576, every_s: float = _EVERY_S) -> None:
        self.max_threads = max_threads or TORCH_DEFAULT_THREADS
        g = torch.Generator().manual_seed(0)
        self._x = torch.randn(32, hidden, generator=g)
        self._w = torch.randn(hidden * 3, hidden, generator=g)
        self.every_s = every_s
        self._last = -float("inf")
        self.choice = self.max_threads
        self.history: list[tuple[float, float, int]] = []  # (s at 1 thread, s at max or inf, choice)

    def maybe_tune(self) -> None:
        now = time.monotonic()
        if self.max_threads <= 1 or now - self._last < self.every_s:
            return
        self._last = now

        def matmul() -> None:
            torch.nn.functional.linear(self._x, self._w)

        # A single matmul can get lucky with the scheduler; a run of them, like a decode step, cannot.
        # Best of several runs each: one stalled run (our own client threads waking up) must not flip
        # the choice, while real contention stalls every run. A stalled run is cut at 2x `one`.
        torch.set_num_threads(1)
        matmul()
        one = min(_time_ops(matmul, _OPS, float("inf")) for _ in range(_RUNS))
        torch.set_num_threads(self.max_threads)
        matmul()
        many = min(_time_ops(matmul, _OPS, 2 * one) for _ in range(_RUNS))
        self.choice = 1 if one <= many else self.max_threads
        torch.set_num_threads(self.choice)
        self.history.append((one, many, self.choice))
        # Time spent here counts as busy; measure from the end so a slow probe does not repeat at once.
        self._last = time.monotonic()
