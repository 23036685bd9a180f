"""Self-play throughput: N concurrent Perudo games with LLM agents on the embedded model, against
the same games played one at a time.

Both seats are LLM agents (the model plays itself). The concurrent run sends every pending move of
all live games to the engine in one `generate` call per tick; the sequential run plays episodes
with concurrency 1, so each call carries one move. The sequential side times the first
`--sequential` episodes (same seeds) and scales to the concurrent run's number of moves by its time per move, because playing all
N one by one would take long on a CPU; the report says so.

    python benchmarks/selfplay.py                      # 64 games, 2 players x 2 dice
    python benchmarks/selfplay.py --episodes 16 --sequential 4 --model hf:/path

Both sides use the engine's prefix cache (each turn's prompt extends the seat's previous one); the
default model spec gives it 8 GB, room for 128 fp32 conversations of ~1,100 tokens.

Last line: RESULT selfplay_speedup=<ratio> episodes_per_min=<concurrent> tokens_per_s=<concurrent>
"""

from __future__ import annotations

import argparse
import time

from selflab.envs.runner import EpisodeSpec, play
from selflab.models.types import GenerationRequest


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2-135m?prefix_cache_mb=8192")
    ap.add_argument("--episodes", type=int, default=64)
    ap.add_argument(
        "--sequential", type=int, default=8, help="episodes timed one at a time (scaled to --episodes)"
    )
    ap.add_argument("--players", type=int, default=2)
    ap.add_argument("--dice", type=int, default=2)
    ap.add_argument("--max-new-tokens", type=int, default=16)
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
        EpisodeSpec(f"ep{i:04d}", "perudo-v0", [llm] * args.players, seed=args.seed + i, env_kwargs=kwargs)
        for i in range(args.episodes)
    ]
    options = {"llm": {"max_new_tokens": args.max_new_tokens, "temperature": args.temperature}}

    # Warm-up: one short batched call so kernel setup is not charged to either side.
    model.generate([GenerationRequest.chat("Warm up.", max_new_tokens=4)] * 2)
    engine = getattr(model, "engine", None)

    def forget() -> None:
        """Each side starts with an empty prefix cache (same seeds would replay cached turns)."""
        if engine is not None:
            engine.clear_prefix_cache()

    forget()

    conc = play(specs, concurrency=args.episodes, agent_options=options, progress=True)
    cs = conc.stats
    print(
        f"concurrent: {cs.episodes} episodes in {cs.wall_s:.1f}s, {cs.model_calls} model calls, "
        f"{cs.requests} moves, mean batch {cs.mean_batch:.1f}, {cs.completion_tokens} tokens, "
        f"{cs.tokens_per_s:.1f} tok/s, {cs.episodes_per_min:.2f} episodes/min"
    )

    cache = engine.prefix_cache if engine is not None else None
    cache_line = (
        f"prefix cache (concurrent run): {cache.hits} hits, {cache.misses} misses, "
        f"{cache.hit_tokens} prompt tokens served from it"
        if cache is not None
        else "no prefix cache"
    )
    n_seq = max(1, min(args.sequential, args.episodes))
    forget()
    seq = play(specs[:n_seq], concurrency=1, agent_options=options, progress=True)
    ss = seq.stats
    per_episode = ss.wall_s / ss.episodes
    # Scale by time per move (episodes differ in length), to the concurrent run's number of moves.
    seq_total = ss.wall_s / max(1, ss.requests) * cs.requests
    print(
        f"sequential: {ss.episodes} episodes in {ss.wall_s:.1f}s ({per_episode:.2f}s each, "
        f"{ss.requests} moves, {ss.completion_tokens} tokens, {ss.tokens_per_s:.1f} tok/s); "
        f"scaled to the concurrent run's {cs.requests} moves: {seq_total:.1f}s"
    )
    moves_conc = cs.requests / cs.episodes
    moves_seq = ss.requests / ss.episodes
    print(f"moves per episode: concurrent {moves_conc:.1f}, sequential subset {moves_seq:.1f}")
    invalid = sum(e.invalid(p) for e in conc.episodes for p in range(args.players))
    attempts = sum(e.attempts(p) for e in conc.episodes for p in range(args.players))
    print(f"LLM invalid-action rate (concurrent run): {invalid / max(1, attempts):.3f}")
    print(cache_line)
    speedup = seq_total / cs.wall_s
    print(
        f"RESULT selfplay_speedup={speedup:.2f} episodes_per_min={cs.episodes_per_min:.2f} "
        f"tokens_per_s={cs.tokens_per_s:.1f}"
    )


if __name__ == "__main__":
    main()
