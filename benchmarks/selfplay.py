"""Self-play throughput: N concurrent Perudo games with LLM agents on the embedded model, against
the same games played one at a time.

Both seats are LLM agents (the model plays itself). The concurrent run sends every pending move of
all live games to the engine in one `generate` call per tick; the sequential run plays episodes
with concurrency 1, so each call carries one move. The sequential side times the first
`--sequential` episodes (same seeds) and scales to the concurrent run's number of moves by its time
per move, because playing all N one by one would take long on a CPU; the report says so.

    python benchmarks/selfplay.py                      # 64 games, 2 players x 2 dice
    python benchmarks/selfplay.py --episodes 32 --sequential 4
    python benchmarks/selfplay.py --env perudo-small-v0 --context-tokens 1024 --max-new-tokens 24 \
        --temperature 0.8 --episodes 16 --sequential 0   # the game self-play loop's setting, one side

Both sides use the engine's prefix cache (a turn's prompt shares its start with earlier prompts);
the default model spec gives it 2 GB (least recently used entries go first; the rules and a seat's
previous prompt are what later prompts reuse) and pins one torch thread, so process CPU seconds
measure the work even when other processes share the machine.

Besides wall-clock figures it prints contention-robust ones: prompt tokens per move (what the
model reads), prefill tokens per move (what it computes: prompt tokens minus those served from the
prefix cache or a shared prefix), the prefix cache's hit rate, and process CPU seconds per episode
and per move on each side (`cpu_speedup` = sequential CPU per move / concurrent CPU per move), split
into the engine thread's CPU in admissions (prefill) and in decode steps, and the rest.

Last line: RESULT selfplay_speedup=<ratio> episodes_per_min=<concurrent> tokens_per_s=<concurrent>
prompt_tokens_per_move=<concurrent> cpu_speedup=<ratio>
"""

from __future__ import annotations

import argparse
import resource
import time
from dataclasses import dataclass

from selflab.envs.runner import EpisodeSpec, PlayResult, play
from selflab.models.types import GenerationRequest


@dataclass
class Side:
    """One side's play result with the engine and CPU counters measured around it."""

    result: PlayResult
    cpu_s: float
    prefill_tokens: int
    cache_hits: int
    cache_misses: int
    cache_hit_tokens: int
    columns_read: int  # decode attention: key columns read, and those holding a row's own tokens
    columns_cached: int
    admit_cpu_s: float  # the engine thread's CPU in admissions (prefill) and in decode steps
    step_cpu_s: float

    @property
    def moves(self) -> int:
        return max(1, self.result.stats.requests)

    def line(self, name: str) -> str:
        s = self.result.stats
        lookups = max(1, self.cache_hits + self.cache_misses)
        return (
            f"{name}: prompt tokens per move {s.prompt_tokens / self.moves:.1f}, prefill tokens per move "
            f"{self.prefill_tokens / self.moves:.1f}, prefix cache hit rate {self.cache_hits / lookups:.2f} "
            f"({self.cache_hit_tokens / max(1, s.prompt_tokens):.2f} of prompt tokens), process CPU "
            f"{self.cpu_s:.1f}s = {self.cpu_s / max(1, s.episodes):.2f}s per episode, "
            f"{1000 * self.cpu_s / self.moves:.0f} ms per move, decode attention padding share "
            f"{1 - self.columns_cached / max(1, self.columns_read):.3f}\n"
            f"{name}: CPU per move by part: engine admission (prefill) {1000 * self.admit_cpu_s / self.moves:.0f} ms, "
            f"engine decode steps {1000 * self.step_cpu_s / self.moves:.0f} ms, rest of the process (masks, "
            f"agents, games) {1000 * (self.cpu_s - self.admit_cpu_s - self.step_cpu_s) / self.moves:.0f} ms"
        )


def measure(model, specs: list[EpisodeSpec], concurrency: int, options: dict) -> Side:
    """Play `specs` from an empty prefix cache, counting what the engine computed."""
    engine = getattr(model, "engine", None)
    cache = getattr(engine, "prefix_cache", None)
    if engine is not None:
        engine.clear_prefix_cache()  # same seeds would replay cached turns

    def counters() -> list[float]:
        st = getattr(engine, "stats", None)
        return [
            getattr(st, "prefill_tokens", 0),
            cache.hits if cache is not None else 0,
            cache.misses if cache is not None else 0,
            cache.hit_tokens if cache is not None else 0,
            getattr(st, "decode_columns_read", 0),
            getattr(st, "decode_columns_cached", 0),
            getattr(st, "admit_cpu_s", 0.0),
            getattr(st, "step_cpu_s", 0.0),
        ]

    before = counters()
    cpu = time.process_time()
    result = play(specs, concurrency=concurrency, agent_options=options, progress=True)
    cpu = time.process_time() - cpu
    return Side(result, cpu, *(b - a for a, b in zip(before, counters(), strict=True)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2-135m?prefix_cache_mb=2048&threads=1")
    ap.add_argument("--env", default="perudo-v0")
    ap.add_argument("--episodes", type=int, default=64)
    ap.add_argument(
        "--sequential",
        type=int,
        default=8,
        help="episodes timed one at a time (scaled to --episodes); 0: skip",
    )
    ap.add_argument("--players", type=int, default=2)
    ap.add_argument("--dice", type=int, default=2)
    ap.add_argument("--max-new-tokens", type=int, default=16)
    ap.add_argument("--context-tokens", type=int, default=2048)
    ap.add_argument("--temperature", type=float, default=0.7)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    from selflab.models import load_model

    t = time.perf_counter()
    model = load_model(args.model)  # load once, outside the timings
    print(f"model {args.model} loaded in {time.perf_counter() - t:.1f}s")
    llm = f"llm:{args.model}"
    kwargs = {"players": args.players, "dice": args.dice}
    specs = [
        EpisodeSpec(f"ep{i:04d}", args.env, [llm] * args.players, seed=args.seed + i, env_kwargs=kwargs)
        for i in range(args.episodes)
    ]
    options = {
        "llm": {
            "max_new_tokens": args.max_new_tokens,
            "temperature": args.temperature,
            "context_tokens": args.context_tokens,
        }
    }

    # Warm-up: one short batched call so kernel setup is not charged to either side.
    model.generate([GenerationRequest.chat("Warm up.", max_new_tokens=4)] * 2)

    conc = measure(model, specs, args.episodes, options)
    cs = conc.result.stats
    print(
        f"concurrent: {cs.episodes} episodes in {cs.wall_s:.1f}s, {cs.model_calls} model calls, "
        f"{cs.requests} moves, mean batch {cs.mean_batch:.1f}, {cs.completion_tokens} tokens, "
        f"{cs.tokens_per_s:.1f} tok/s, {cs.episodes_per_min:.2f} episodes/min"
    )
    print(conc.line("concurrent"))
    episodes = conc.result.episodes
    invalid = sum(e.invalid(p) for e in episodes for p in range(args.players))
    attempts = sum(e.attempts(p) for e in episodes for p in range(args.players))
    print(f"moves per episode (concurrent) {cs.requests / max(1, cs.episodes):.1f}")
    print(
        f"LLM invalid-action rate (concurrent run): {invalid / max(1, attempts):.3f} ({invalid} of {attempts})"
    )
    prompt_per_move = cs.prompt_tokens / conc.moves
    if args.sequential <= 0:
        print(
            f"RESULT episodes_per_min={cs.episodes_per_min:.2f} tokens_per_s={cs.tokens_per_s:.1f} "
            f"prompt_tokens_per_move={prompt_per_move:.1f}"
        )
        return

    n_seq = max(1, min(args.sequential, args.episodes))
    seq = measure(model, specs[:n_seq], 1, options)
    ss = seq.result.stats
    # Scale by time per move (episodes differ in length), to the concurrent run's number of moves.
    seq_total = ss.wall_s / seq.moves * cs.requests
    print(
        f"sequential: {ss.episodes} episodes in {ss.wall_s:.1f}s ({ss.wall_s / ss.episodes:.2f}s each, "
        f"{ss.requests} moves, {ss.completion_tokens} tokens, {ss.tokens_per_s:.1f} tok/s); "
        f"scaled to the concurrent run's {cs.requests} moves: {seq_total:.1f}s"
    )
    print(seq.line("sequential"))
    print(f"moves per episode (sequential subset) {ss.requests / max(1, ss.episodes):.1f}")
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    speedup = seq_total / cs.wall_s
    cpu_speedup = (seq.cpu_s / seq.moves) / (conc.cpu_s / conc.moves)
    print(
        f"RESULT selfplay_speedup={speedup:.2f} episodes_per_min={cs.episodes_per_min:.2f} "
        f"tokens_per_s={cs.tokens_per_s:.1f} prompt_tokens_per_move={prompt_per_move:.1f} "
        f"cpu_speedup={cpu_speedup:.2f}"
    )


if __name__ == "__main__":
    main()
