"""Game self-play on Ray workers: episodes per minute on 1 and 2 workers, and the cost of the Ray
path at 1 worker against the plain in-process `play`.

Two variants, each played three ways on the same seeds (so every side plays identical episodes):
in process (`play(specs)`), on a Ray executor with 1 worker, and with 2 workers (1 CPU each).

- scripted: scripted vs random Perudo (pure Python, one core per process), many episodes;
- llm: the embedded model against the scripted agent, a few short episodes (each Ray worker loads
  the model itself from the spec string; torch uses the CPUs Ray gives the worker).

Ray start-up (actors, and the model load inside each worker) is timed separately and kept out of
the throughput numbers: a warm-up map runs first. On a 2-core machine the gain from 2 workers is
bounded by the cores; with other jobs on the machine it is lower.

    python benchmarks/ray_selfplay.py                         # both variants
    python benchmarks/ray_selfplay.py --variant scripted --episodes 2000

Last line: RESULT ray_2v1_speedup=<scripted> ray_overhead_1w=<scripted, fraction> llm_ray_2v1_speedup=<llm>
"""

from __future__ import annotations

import argparse
import time

from selflab.envs.runner import play, schedule
from selflab.execution.ray_executor import RayExecutor

OPTIONS: dict = {}  # agent options, e.g. {"llm": {"max_new_tokens": 16}}


def _time_side(specs, executor=None, concurrency: int = 64) -> tuple[float, int]:  # noqa: ANN001
    t = time.perf_counter()
    result = play(specs, concurrency=concurrency, executor=executor, agent_options=OPTIONS)
    return time.perf_counter() - t, len(result.episodes)


def run_variant(name: str, env_id: str, agents: list[str], episodes: int, warm: int, repeats: int) -> dict:
    """Time the three sides in interleaved rounds (best of `repeats`), so drifting load from other
    jobs hits them alike."""
    specs = schedule(env_id, agents, episodes, seed=1000)
    warmup = schedule(env_id, agents, warm, seed=0, prefix="warm")
    play(warmup, agent_options=OPTIONS)  # warm the in-process path too (model load, caches)
    models = sorted({a[4:] for a in agents if a.startswith("llm:")})
    executors = {}
    rows: dict[str, float] = {}
    for workers in (1, 2):
        t = time.perf_counter()
        ex = executors[f"ray{workers}"] = RayExecutor(workers, models=models).start()
        play(warmup, executor=ex, agent_options=OPTIONS)  # start the actors and load the models inside them
        rows[f"ray{workers}_startup"] = time.perf_counter() - t
    times: dict[str, list[float]] = {"local": [], "ray1": [], "ray2": []}
    for _ in range(repeats):
        times["local"].append(_time_side(specs)[0])
        for side, ex in executors.items():
            times[side].append(_time_side(specs, ex)[0])
    for ex in executors.values():
        ex.close()
    for side, ts in times.items():
        rows[side] = min(ts)
        extra = f"  (start-up {rows[side + '_startup']:.1f} s, not counted)" if side != "local" else ""
        print(f"{name:8s} {side:6s} {episodes} episodes: best {rows[side]:7.2f} s of [{', '.join(f'{x:.2f}' for x in ts)}] = "
              f"{60 * episodes / rows[side]:9.1f} episodes/min{extra}")  # fmt: skip
    rows["speedup"] = rows["ray1"] / rows["ray2"]
    rows["overhead"] = rows["ray1"] / rows["local"] - 1
    print(
        f"{name:8s} 2 vs 1 workers: x{rows['speedup']:.2f}; Ray at 1 worker vs in process: {100 * rows['overhead']:+.1f}%"
    )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variant", choices=("scripted", "llm", "both"), default="both")
    ap.add_argument("--episodes", type=int, default=1500, help="scripted episodes per side")
    ap.add_argument("--llm-episodes", type=int, default=8)
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--max-new-tokens", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=2, help="best of N timings per side")
    args = ap.parse_args()

    import ray

    # One Ray instance for every side: 3 logical CPUs so the 1-worker and 2-worker executors can both
    # hold their actors (idle actors use no CPU); the machine itself has what it has.
    ray.init(num_cpus=3, include_dashboard=False, object_store_memory=200 * 1024 * 1024)
    OPTIONS["llm"] = {"max_new_tokens": args.max_new_tokens, "temperature": 0.7}
    scripted = llm = None
    if args.variant in ("scripted", "both"):
        scripted = run_variant(
            "scripted", "perudo-v0", ["scripted", "random"], args.episodes, 20, args.repeats
        )
    if args.variant in ("llm", "both"):
        llm = run_variant(
            "llm", "perudo-small-v0", [f"llm:{args.model}", "scripted"], args.llm_episodes, 2, 1
        )
    ray.shutdown()
    parts = []
    if scripted:
        parts += [f"ray_2v1_speedup={scripted['speedup']:.2f}", f"ray_overhead_1w={scripted['overhead']:.3f}"]
    if llm:
        parts += [f"llm_ray_2v1_speedup={llm['speedup']:.2f}", f"llm_ray_overhead_1w={llm['overhead']:.3f}"]
    print("RESULT " + " ".join(parts))


if __name__ == "__main__":
    main()
