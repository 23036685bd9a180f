"""Weight-only int8/int4 on the embedded model: kernel cost, engine cost at batch 1, and quality.

Run (from the repository root, PYTHONPATH=src):
  python benchmarks/quant.py matmuls [--rows 1,4,16,32] [--rounds 2]   (also fbgemm dynamic int8)
  python benchmarks/quant.py engine [--variants float32,bfloat16,bfloat16+int8,bfloat16+int4] [--rounds 2]
  python benchmarks/quant.py quality [--variants bfloat16,bfloat16+int4] [--prompts 8] [--items 32]
  python benchmarks/quant.py peer [--variants bfloat16+int4,bfloat16] [--prompts 3] [--rounds 2]

Every figure is process CPU time at 1 torch thread, variants interleaved in one process, so a
shared, loaded machine inflates none of them (wall time would). `matmuls`: the 210 decoder matmuls
plus the LM head of one SmolLM2-135M decode step with `rows` rows, per weight format. `engine`: the
whole engine at batch 1 (greedy 48-token chat requests, one at a time), CPU ms per decode step:
(CPU of a 48-token request - CPU of the same request with 1 token) / the decode steps between them.
A variant is `dtype[+quant]`, as in `generation.py --dtypes` (bfloat16+int4, bfloat16+int4-g64).
`quality`: greedy texts of each quantised model against the dense bf16 model (identical texts, mean
shared prefix) and the mean per-token log-prob of the evaluation bench's reference answers, with the
quantised weights forced for every row (so the numbers are the weights' own, not the dense
fallback's). `peer`: CPU ms per generated token at batch 1 and 1 thread, our engine against
llama.cpp's server (`xllamacpp`, the `bench` extra) on the shipped Q4_1 GGUF, the server's CPU read
from /proc: the single-stream comparison without the machine's load in it.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
import llamacpp_peer  # noqa: E402
from generation_timing import workload  # noqa: E402

from selflab.models import embedded  # noqa: E402
from selflab.models.hf import HFModel  # noqa: E402
from selflab.models.lowbit import int4_group_for, pack_int4  # noqa: E402
from selflab.models.quant import SmallBatchLinear  # noqa: E402
from selflab.models.types import GenerationRequest, user  # noqa: E402

ITEMS = Path(__file__).parents[1] / "src/selflab/evalbench/data/items.jsonl"
SHAPES = [(576, 576), (192, 576), (192, 576), (576, 576), (1536, 576), (1536, 576), (576, 1536)] * 30
SHAPES += [(49152, 576)]


def matmuls(args: argparse.Namespace) -> None:
    torch.manual_seed(0)
    weights = [torch.randn(n, k) * 0.05 for n, k in SHAPES]
    bf16 = [w.bfloat16() for w in weights]
    scales = [w.abs().amax(1) / 127 for w in weights]
    int8 = [
        ((w / s[:, None]).round().to(torch.int8), s.bfloat16()) for w, s in zip(weights, scales, strict=True)
    ]
    int4 = {}
    for g in (32, 64, 128):
        groups = [int4_group_for(w.shape[1], g) for w in weights]
        int4[g] = [(*pack_int4(w, gw), gw) for w, gw in zip(weights, groups, strict=True)]
    mm4 = torch.ops.aten._weight_int4pack_mm_for_cpu
    # fbgemm's dynamic int8 linear: int8 weights and per-call int8 activations (as llama.cpp
    # quantises its activations to Q8); fp32 in and out. PyTorch marks these ops deprecated.
    dyn8 = [
        torch.ops.quantized.linear_prepack(
            torch.quantize_per_channel(w, s.double(), torch.zeros(len(s), dtype=torch.long), 0, torch.qint8),
            None,
        )
        for w, s in zip(weights, scales, strict=True)
    ]
    variants = {
        "fp32": lambda x, i: torch.nn.functional.linear(x, weights[i]),
        "bf16": lambda x, i: torch.nn.functional.linear(x.bfloat16(), bf16[i]),
        "int8": lambda x, i: torch.ops.aten._weight_int8pack_mm(x.bfloat16(), *int8[i]),
        **{
            f"int4-g{g}": (lambda p: lambda x, i: mm4(x.bfloat16(), p[i][0], p[i][2], p[i][1]))(int4[g])
            for g in int4
        },
        "dyn-int8 (fbgemm)": lambda x, i: torch.ops.quantized.linear_dynamic(x, dyn8[i], True),
        "int4-g32 fp32 act.": lambda x, i: mm4(x, int4[32][i][0], int4[32][i][2], int4[32][i][1].float()),
    }
    rows_list = [int(r) for r in args.rows.split(",")]
    best: dict[tuple[int, str], float] = {}
    with torch.inference_mode():
        for rnd in range(args.rounds):
            for rows in rows_list:
                xs = {k: torch.randn(rows, k) for k in (576, 1536)}
                for name, f in variants.items():
                    if "fp32 act" in name and rows > 1:
                        continue  # ~25x slower than bf16: one row says enough
                    for i in range(3):  # warm up
                        f(xs[SHAPES[i][1]], i)
                    start = time.process_time()
                    for _ in range(args.reps):
                        for i, (_, k) in enumerate(SHAPES):
                            f(xs[k], i)
                    ms = (time.process_time() - start) * 1000 / args.reps
                    best[(rows, name)] = min(ms, best.get((rows, name), math.inf))
                print(
                    f"round {rnd} rows {rows}: "
                    + "  ".join(f"{n} {best[(rows, n)]:.1f}" for n in variants if (rows, n) in best),
                    flush=True,
                )
    print("CPU ms per decode step's matmuls (best of rounds), 1 thread")
    for rows in rows_list:
        print(
            f"rows {rows:3d}: "
            + "  ".join(f"{n} {best[(rows, n)]:.1f}" for n in variants if (rows, n) in best)
        )


def load(variant: str, **kwargs: object) -> HFModel:
    """`dtype[+quant]` as the generation benchmark spells it."""
    dtype, _, quant = variant.partition("+")
    return HFModel(embedded.prepare(), dtype=dtype, quant=quant or "none", **kwargs)


def engine(args: argparse.Namespace) -> None:
    torch.set_num_threads(1)
    texts = [r.messages[-1].content for r in workload(args.prompts, seed=0)]
    variants = args.variants.split(",")
    per_step: dict[str, list[float]] = {v: [] for v in variants}
    for rnd in range(args.rounds):
        for variant in variants:
            with load(variant, threads=1, prefix_reuse=False, max_batch_size=1) as lm:
                lm.generate([GenerationRequest.chat("Hello", max_new_tokens=4)])  # warm up
                cpu, steps = 0.0, 0
                for text in texts:
                    for n, sign in ((48, 1), (1, -1)):
                        before, start = lm.engine.stats.decode_steps, time.process_time()
                        lm.generate([GenerationRequest.chat(text, max_new_tokens=n)])
                        cpu += sign * (time.process_time() - start)
                        steps += sign * (lm.engine.stats.decode_steps - before)
                per_step[variant].append(1000 * cpu / steps)
                print(
                    f"round {rnd} {variant}: {per_step[variant][-1]:.1f} CPU ms per decode step ({steps} steps)",
                    flush=True,
                )
    print("batch 1, greedy 48-token requests, CPU ms per decode step (1 thread), per round:")
    for variant, values in per_step.items():
        print(f"  {variant:28s} " + "  ".join(f"{v:.1f}" for v in values))


def quality(args: argparse.Namespace) -> None:
    torch.set_num_threads(1)
    prompts = [
        GenerationRequest.chat(r.messages[-1].content, max_new_tokens=48) for r in workload(args.prompts, 0)
    ]
    items = [json.loads(line)["task"] for line in ITEMS.read_text().splitlines()[: args.items]]
    variants = args.variants.split(",")  # the first is the reference
    greedy, logprobs = {}, {}
    for variant in variants:
        with load(variant, threads=1) as lm:
            greedy[variant] = [lm.generate([p])[0].text for p in prompts]  # one at a time: batch 1
            for module in lm.model.modules():  # the quantised weights for every row from here on
                if isinstance(module, SmallBatchLinear):
                    module.max_rows = 1 << 30
            per_token = []
            for item in items:
                (total,) = lm.score([user(item["prompt"])], [item["reference"]])
                per_token.append(total / len(lm.tokenizer(item["reference"])["input_ids"]))
            logprobs[variant] = per_token
    ref = greedy[variants[0]]
    print(f"greedy, {len(prompts)} chat prompts, 48 tokens, engine (quantised path for the decode steps):")
    for variant in variants:
        same, n, shared = llamacpp_peer.agreement(dict(enumerate(greedy[variant])), dict(enumerate(ref)))
        print(f"  {variant:22s} vs {variants[0]}: {same}/{n} identical, mean shared prefix {shared:.2f}")
    base = logprobs[variants[0]]
    print(
        f"reference answers of {len(items)} bench items, mean log-prob per token (quantised weights for every row):"
    )
    for variant in variants:
        lp = logprobs[variant]
        diff = statistics.mean(abs(a - b) for a, b in zip(lp, base, strict=True))
        print(
            f"  {variant:22s} {statistics.mean(lp):.4f} (ppl {math.exp(-statistics.mean(lp)):.3f}), "
            f"mean |diff| vs {variants[0]} {diff:.4f}"
        )


def _children_cpu_s() -> float:
    """User + system CPU seconds of this process's live children (the llama.cpp server), from /proc."""
    total, me = 0, str(os.getpid())
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if fields[1] == me:  # ppid
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / os.sysconf("SC_CLK_TCK")


def peer(args: argparse.Namespace) -> None:
    """CPU ms per generated token at batch 1 and 1 thread: our engine (each variant) and llama.cpp's
    server on the shipped Q4_1 GGUF (its child process's CPU), same greedy chat requests, interleaved.
    Prompt processing is included for both (distinct prompts, ~30 tokens each, 48 new tokens)."""
    from selflab.models.openai_backend import OpenAIModel

    torch.set_num_threads(1)
    variants = args.variants.split(",")
    texts = [r.messages[-1].content for r in workload(4 * args.prompts * args.rounds, seed=1)][::4]
    models = {v: load(v, threads=1, max_batch_size=1) for v in variants}
    per_token: dict[str, list[float]] = {v: [] for v in [*variants, "llama.cpp Q4_1"]}
    with llamacpp_peer.serve("xllamacpp", embedded.gguf_path(), 1, 1) as url:
        server = OpenAIModel("smollm2", url, concurrency=1, timeout=900.0, retries=0)
        server.generate([GenerationRequest.chat("Warm up.", max_new_tokens=4)])
        for lm in models.values():
            lm.generate([GenerationRequest.chat("Warm up.", max_new_tokens=4)])
        for rnd in range(args.rounds):
            batch = [
                GenerationRequest.chat(t, max_new_tokens=48)
                for t in texts[rnd * args.prompts : (rnd + 1) * args.prompts]
            ]
            for name, lm, clock in [
                *((v, m, time.process_time) for v, m in models.items()),
                ("llama.cpp Q4_1", server, _children_cpu_s),
            ]:
                start, tokens = clock(), 0
                for req in batch:
                    tokens += lm.generate([req])[0].completion_tokens
                per_token[name].append(1000 * (clock() - start) / tokens)
                print(
                    f"round {rnd} {name}: {per_token[name][-1]:.1f} CPU ms per token ({tokens} tokens)",
                    flush=True,
                )
        server.close()
    for lm in models.values():
        lm.close()
    llama = statistics.mean(per_token["llama.cpp Q4_1"])
    print("batch 1, 1 thread, CPU ms per generated token (prompt included), per round; speed vs llama.cpp:")
    for name, values in per_token.items():
        ratio = llama / statistics.mean(values)
        print(
            f"  {name:28s} " + "  ".join(f"{v:.1f}" for v in values) + f"   x{ratio:.2f} of llama.cpp's speed"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("what", choices=["matmuls", "engine", "quality", "peer"])
    parser.add_argument("--rows", default="1,4,16,32")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--reps", type=int, default=2, help="matmuls: passes per measurement")
    parser.add_argument(
        "--variants",
        default="bfloat16,float32,bfloat16+int8,bfloat16+int4",
        help="quality: the first is the reference",
    )
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--items", type=int, default=32)
    args = parser.parse_args()
    {"matmuls": matmuls, "engine": engine, "quality": quality, "peer": peer}[args.what](args)


if __name__ == "__main__":
    main()
