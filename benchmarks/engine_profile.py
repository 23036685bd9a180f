"""Where the batching engine's CPU time goes, measured so that a shared, loaded machine does not
distort it: process and engine-thread CPU seconds at 1 torch thread, not wall time.

Run: python benchmarks/engine_profile.py [--n 64] [--dtype float32|bfloat16] [--profile]

Submits the first `--n` requests of `generation.py`'s workload at once (concurrency n), and prints
total process CPU per generated token, CPU per engine phase (prefill, sampling, bookkeeping), decode
CPU per step by batch size with the longest row's length, and the share of decode attention reads
that were padding. `--profile` adds torch.profiler's operator table (its times are wall times).
"""

from __future__ import annotations

import argparse
import collections
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from generation_timing import workload  # noqa: E402

from selflab.models import embedded  # noqa: E402
from selflab.models import engine as engine_module  # noqa: E402
from selflab.models.hf import HFModel  # noqa: E402
from selflab.models.types import GenerationRequest  # noqa: E402

PHASES = ["_admit", "_prefill", "_choose", "_advance"]


def instrument() -> tuple[dict[str, list[float]], list[tuple[int, int, float]]]:
    """Wrap engine methods to accumulate their engine-thread CPU time; record each decode step's
    (rows, longest row, CPU s)."""
    phases: dict[str, list[float]] = collections.defaultdict(lambda: [0.0, 0.0])
    steps: list[tuple[int, int, float]] = []
    cls = engine_module.BatchingEngine

    def wrap(name: str) -> None:
        inner = getattr(cls, name)

        def timed(*args, **kwargs):
            start = time.thread_time()
            try:
                return inner(*args, **kwargs)
            finally:
                phases[name][0] += time.thread_time() - start
                phases[name][1] += 1

        setattr(cls, name, timed)

    for name in PHASES:
        wrap(name)
    inner_step = cls._step

    def step(self) -> None:
        rows, longest = len(self._rows), max(self._cache.lengths)
        start = time.thread_time()
        inner_step(self)
        steps.append((rows, longest, time.thread_time() - start))

    cls._step = step  # type: ignore[method-assign]
    return phases, steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=64, help="requests, all submitted at once")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--profile", action="store_true", help="also print torch.profiler's op table")
    args = parser.parse_args()
    phases, steps = instrument()
    lm = HFModel(embedded.prepare(), name=embedded.EMBEDDED_NAME, dtype=args.dtype, threads=1)
    lm.generate([GenerationRequest.chat("Warm up.", max_new_tokens=4)])
    phases.clear()
    steps.clear()
    requests = workload(args.n, 0)
    st = lm.engine.stats
    before = (st.decode_steps, st.decode_row_steps, st.prefill_calls, st.prefill_tokens)
    read0, cached0 = st.decode_columns_read, st.decode_columns_cached
    # The engine computes on its own worker thread, which a default profiler does not record (the
    # op table came out empty): profile every thread.
    profiler = (
        torch.profiler.profile(
            activities=[torch.profiler.ProfilerActivity.CPU],
            experimental_config=torch._C._profiler._ExperimentalConfig(profile_all_threads=True),
        )
        if args.profile
        else None
    )
    if profiler is not None:
        profiler.__enter__()
    cpu, wall = time.process_time(), time.perf_counter()
    outs = lm.generate(requests)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    if profiler is not None:
        profiler.__exit__(None, None, None)
    tokens = sum(o.completion_tokens for o in outs)
    n_steps = st.decode_steps - before[0]
    print(
        f"{args.dtype} n={args.n}: {tokens} tokens, wall {wall:.1f} s, process CPU {cpu:.1f} s = "
        f"{1000 * cpu / tokens:.1f} ms/token; decode steps {n_steps}, mean batch "
        f"{(st.decode_row_steps - before[1]) / max(n_steps, 1):.1f}; prefill forwards "
        f"{st.prefill_calls - before[2]}, tokens {st.prefill_tokens - before[3]}"
    )
    read, cached = st.decode_columns_read - read0, st.decode_columns_cached - cached0
    print(
        f"  attention columns read {read}, holding real tokens {cached}: padding share {1 - cached / max(read, 1):.3f}"
    )
    for name, (seconds, calls) in sorted(phases.items(), key=lambda item: -item[1][0]):
        print(
            f"  {name:10s} calls {int(calls):6d}  CPU {seconds:7.2f} s  ({1000 * seconds / max(calls, 1):.2f} ms/call)"
        )
    print(f"  decode steps total CPU {sum(s[2] for s in steps):.2f} s")
    for lo, hi in [(1, 8), (9, 24), (25, 40), (41, 56), (57, 64)]:
        sel = [s for s in steps if lo <= s[0] <= hi]
        if sel:
            print(
                f"  decode {lo}-{hi} rows: {len(sel)} steps, mean rows {statistics.mean(s[0] for s in sel):.1f}, "
                f"longest row {statistics.mean(s[1] for s in sel):.0f}, CPU {1000 * statistics.mean(s[2] for s in sel):.1f} ms/step"
            )
    if profiler is not None:
        print(profiler.key_averages().table(sort_by="self_cpu_time_total", row_limit=30))
    lm.close()


if __name__ == "__main__":
    main()
