"""Cost of grammar masks: engine throughput with every row constrained against no row constrained.

Run: python benchmarks/constraints.py [--requests 128] [--concurrency 64] [--max-new-tokens 64] [--rounds 2]

One workload of chat requests on the embedded model (sampled, seeded), run at concurrency 64 twice
per round in alternating order: once free, once with every request constrained. Constraints are
chosen so that no row can finish before its token budget (a JSON array with many required items, a
long regex, a Lark move list), so both sides decode the same number of tokens and the ratio measures
masks, not shorter answers. Both sides run in one process, so the ratio holds on a noisy machine.
The last line is machine-readable:
RESULT mask_overhead=<1 - constrained tokens/s / free tokens/s> free_tps=... constrained_tps=...
mask_share=<share of the constrained run's engine time spent computing and applying masks>
"""

from __future__ import annotations

import argparse
import queue
import random
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
    parser.add_argument("--requests", type=int, default=128)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=2)
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
    mask_s = busy_s = 0.0
    table = Table("round", "rows", "tokens", "seconds", "tokens/s", "finish reasons")
    for r in range(args.rounds):
        order = ["free", "constrained"] if r % 2 == 0 else ["constrained", "free"]
        for side in order:
            requests = workload(args.requests, args.max_new_tokens, args.seed + r, side == "constrained")
            stats = lm.engine.stats
            before = stats.mask_s, stats.busy_s
            tok, sec, finishes = run(lm, requests, args.concurrency)
            if side == "constrained":
                mask_s += stats.mask_s - before[0]
                busy_s += stats.busy_s - before[1]
            totals[side][0] += tok
            totals[side][1] += sec
            reasons = {f: finishes.count(f) for f in sorted(set(finishes))}
            table.add_row(str(r), side, str(tok), f"{sec:.1f}", f"{tok / sec:.1f}", str(reasons))
    lm.close()
    console.print(table)
    free_tps = totals["free"][0] / totals["free"][1]
    cons_tps = totals["constrained"][0] / totals["constrained"][1]
    overhead = 1 - cons_tps / free_tps
    console.print(
        f"concurrency {args.concurrency}, {args.requests} requests x {args.max_new_tokens} tokens, "
        f"{args.rounds} rounds, dtype {args.dtype}"
    )
    print(
        f"RESULT mask_overhead={overhead:.3f} free_tps={free_tps:.1f} constrained_tps={cons_tps:.1f} "
        f"mask_share={mask_s / max(busy_s, 1e-9):.3f}"
    )


if __name__ == "__main__":
    main()
