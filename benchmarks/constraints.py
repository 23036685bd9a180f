"""Cost of grammar masks: engine throughput with every row constrained against no row constrained.

Run: python benchmarks/constraints.py [--requests 64] [--concurrency 64] [--max-new-tokens 48] [--rounds 4]

One workload of chat requests on the embedded model (sampled, seeded), run at concurrency 64 twice
per round, free and with every request constrained, in ABBA order (free first in even rounds).
Constraints are chosen so that no row can finish before its token budget (a JSON array with many
required items, a long regex, a Lark move list), so the constrained side decodes its full budget and
the ratio measures masks, not shorter answers. Both sides run in one process, so the ratios hold on
a noisy machine; the median over rounds resists a burst of load during one side.
The last line is machine-readable:
RESULT mask_overhead=<median over rounds of 1 - constrained tokens/s / free tokens/s>
  pooled_overhead=<same on all rounds' totals> free_tps=... constrained_tps=...
  mask_compute_share=<mask computation time / engine busy time, constrained side; it mostly overlaps
  forward passes on the mask thread> mask_wait_share=<time the engine thread waited for masks / busy>
"""

from __future__ import annotations

import argparse
import queue
import random
import statistics
import threading
import time

from rich.console import Console
from rich.table import Table

from selflab.models import embedded
from selflab.models.hf import HFModel
from selflab.models.types import Constraint, GenerationRequest

ITEM = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 24},
        "age": {"type": "integer", "minimum": 0, "maximum": 120},
        "tags": {"type": "array", "items": {"enum": ["red", "green", "blue"]}, "maxItems": 3},
    },
    "required": ["name", "age", "tags"],
    "additionalProperties": False,
}
CONSTRAINTS = [
    Constraint.json_schema({"type": "array", "items": ITEM, "minItems": 200}),
    Constraint.regex(r"([A-Z][a-z]{1,12}( [a-z]{1,12}){3,12}\. ){100,}"),
    Constraint.grammar(
        "start: turn{200,}\n"
        'turn: "bid " NUM " " FACE "; " | "ask " NAME "? " | "accuse " NAME "! "\n'
        'NUM: /[1-9][0-9]?/\nFACE: "ones" | "twos" | "threes" | "fours" | "fives" | "sixes"\n'
        'NAME: "Alice" | "Bob" | "Carol" | "Dave"'
    ),
]
TOPICS = ["the water cycle", "prime numbers", "the rules of chess", "black holes", "compound interest"]


def workload(n: int, max_new: int, seed: int, constrained: bool) -> list[GenerationRequest]:
    rng = random.Random(seed)
    requests = []
    for i in range(n):
        topic = rng.choice(TOPICS)
        constraint = CONSTRAINTS[i % len(CONSTRAINTS)] if constrained else None
        text = f"Write a long list of records, sentences or game moves about {topic}. Never stop."
        requests.append(
            GenerationRequest.chat(
                text,
                max_new_tokens=max_new,
                temperature=0.8,
                seed=rng.randrange(1 << 30),
                constraint=constraint,
            )
        )
    return requests


def run(lm: HFModel, requests: list[GenerationRequest], concurrency: int) -> tuple[int, float, list[str]]:
    """`concurrency` client threads, each sending one request at a time until the queue is empty."""
    todo: queue.Queue = queue.Queue()
    for req in requests:
        todo.put(req)
    counts = [0] * concurrency
    finishes: list[str] = []

    def client(k: int) -> None:
        while True:
            try:
                req = todo.get_nowait()
            except queue.Empty:
                return
            got = lm.generate([req])[0]
            finishes.append(got.finish_reason if not got.error else f"error: {got.error}")
            counts[k] += got.completion_tokens

    threads = [threading.Thread(target=client, args=(k,)) for k in range(concurrency)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(counts), time.perf_counter() - start, finishes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=64)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    console = Console(width=150)
    lm = HFModel(
        embedded.prepare(),
        name=embedded.EMBEDDED_NAME,
        dtype=args.dtype,
        max_batch_size=args.concurrency,
        prefix_cache_mb=0,  # both sides compute every prompt
    )
    # Warm up both paths (first-call overheads, llguidance's tokenizer, grammar compilation).
    lm.generate(workload(len(CONSTRAINTS), 4, args.seed, True) + workload(2, 4, args.seed, False))
    totals = {"free": [0, 0.0], "constrained": [0, 0.0]}
    mask_s = wait_s = busy_s = 0.0
    overheads = []
    table = Table("round", "rows", "tokens", "seconds", "tokens/s", "finish reasons")
    for r in range(args.rounds):
        order = ["free", "constrained"] if r % 2 == 0 else ["constrained", "free"]
        tps = {}
        for side in order:
            requests = workload(args.requests, args.max_new_tokens, args.seed + r, side == "constrained")
            stats = lm.engine.stats
            before = stats.mask_s, stats.mask_wait_s, stats.busy_s
            tok, sec, finishes = run(lm, requests, args.concurrency)
            if side == "constrained":
                mask_s += stats.mask_s - before[0]
                wait_s += stats.mask_wait_s - before[1]
                busy_s += stats.busy_s - before[2]
            tps[side] = tok / sec
            totals[side][0] += tok
            totals[side][1] += sec
            reasons = {f: finishes.count(f) for f in sorted(set(finishes))}
            table.add_row(str(r), side, str(tok), f"{sec:.1f}", f"{tok / sec:.1f}", str(reasons))
        overheads.append(1 - tps["constrained"] / tps["free"])
    lm.close()
    console.print(table)
    free_tps = totals["free"][0] / totals["free"][1]
    cons_tps = totals["constrained"][0] / totals["constrained"][1]
    pooled = 1 - cons_tps / free_tps
    median = statistics.median(overheads)
    console.print(
        f"concurrency {args.concurrency}, {args.requests} requests x {args.max_new_tokens} tokens, "
        f"{args.rounds} rounds, dtype {args.dtype}"
    )
    console.print(f"per-round overheads: {', '.join(f'{o:+.3f}' for o in overheads)}")
    print(
        f"RESULT mask_overhead={median:.3f} pooled_overhead={pooled:.3f} free_tps={free_tps:.1f} "
        f"constrained_tps={cons_tps:.1f} mask_compute_share={mask_s / max(busy_s, 1e-9):.3f} "
        f"mask_wait_share={wait_s / max(busy_s, 1e-9):.3f}"
    )


if __name__ == "__main__":
    main()
