"""Generation throughput of the embedded model: naive HF `generate` vs the batching engine.

Run: python benchmarks/generation.py [--requests 64] [--naive-subset 8] [--c1-subset 16] [--dtypes auto]
A variant may add a weight-only quant option: --dtypes float32,bfloat16+int8,bfloat16+int4
(`hf:...?dtype=bfloat16&quant=int8`; int4 takes a group size too: bfloat16+int4-g64), or a decode
format of the lean single-stream path: float32+fp16, float32+int8-dynamic (`engine_decode`).

One workload of chat requests with mixed prompt lengths and max_new_tokens (16..128, seeded), half
greedy and half sampled with per-request seeds. Measured in one run, so ratios are comparable even on a
noisy shared machine:
- naive: transformers `model.generate`, one request at a time (a subset of the requests);
- engine at concurrency 1, 8 and 64 (client threads, each sending one request at a time);
- llama.cpp's server (the peer, `llamacpp_peer`) at concurrency 64, and at concurrency 1
  *interleaved* with each engine variant: request by request, the order alternating, so that both
  sides of the single-stream ratio are timed in the same minutes (`interleaved`);
- the machine's fp32 matmul GFLOP/s and the resulting compute ceiling 2 * n_params FLOP per token.
The whole set is repeated in bfloat16 when the CPU multiplies bf16 natively (AVX512-BF16/AMX): at
small batch, decoding streams every weight from memory each step, and bf16 halves those bytes. By
default (`--dtypes auto`) it is repeated once more in the CPU's fastest single-stream format
(bfloat16+int4 there, float32+int8-dynamic on AVX2): opt-in, with its accuracy cost, so its
`<variant>_vs_llamacpp_c1=` is printed beside the exact default's, not in its place.
The last line is machine-readable and describes the float32 run (the engine's default dtype), against
the fp32 ceiling: RESULT engine_vs_naive=... ceiling_fraction=... tokens_per_s=...
"""

from __future__ import annotations

import argparse
import contextlib
import time
from pathlib import Path

import llamacpp_peer  # benchmarks/llamacpp_peer.py (scripts run from benchmarks/ find it)
import torch
from generation_timing import engine, interleaved, matmul_gflops, naive, workload  # benchmarks/ sibling
from rich.console import Console
from rich.table import Table

from selflab.models import embedded
from selflab.models.engine_threads import TORCH_DEFAULT_THREADS
from selflab.models.hf import HFModel
from selflab.models.openai_backend import OpenAIModel
from selflab.models.types import GenerationRequest


def bf16_native() -> bool:
    """Whether this CPU has bf16 matmul instructions (otherwise bf16 is emulated and slow)."""
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def default_variants() -> list[str]:
    """float32 (the engine's default), and where bf16 is native bfloat16 and bfloat16+int4 (the
    fastest single stream there); elsewhere float32+int8-dynamic, the fastest single stream on AVX2
    (docs/performance.md, seventh round). The quant variants are opt-in formats with their own
    accuracy, reported beside the exact defaults, not instead of them."""
    if bf16_native():
        return ["float32", "bfloat16", "bfloat16+int4"]
    return ["float32", "float32+int8-dynamic"]


def measure(
    dtype: str,
    requests: list[GenerationRequest],
    args: argparse.Namespace,
    console: Console,
    peers: list[dict] | None = None,
) -> dict:
    """Naive and engine throughput for one variant ("dtype" or "dtype+quant", e.g. "bfloat16+int4");
    returns table rows and tokens/s per setting. With `peers` (open llama.cpp servers), concurrency 1
    is measured interleaved with each of them (`interleaved`), and their tokens/s there are
    returned as "peer_c1" (label -> (tokens, seconds, greedy texts))."""
    base, _, quant = dtype.partition("+")
    lm = HFModel(embedded.prepare(), name=embedded.EMBEDDED_NAME, dtype=base, quant=quant or "none")
    lm.generate([GenerationRequest.chat("Warm up.", max_new_tokens=4)])  # first-call overheads
    rows = []
    cpu = time.process_time()
    tok, sec = naive(lm, requests[: args.naive_subset])
    cpu = time.process_time() - cpu
    console.print(f"{dtype} naive: {tok} tokens in {sec:.1f} s ({cpu:.1f} s process CPU)", style="dim")
    rows.append((f"naive HF generate, 1 at a time ({args.naive_subset} req)", tok, sec, cpu))
    tps = {"naive": tok / sec}
    greedy: dict[int, dict[int, str]] = {}  # concurrency -> greedy request index -> text
    peer_c1: dict[str, tuple[int, float, dict[int, str]]] = {}
    for conc in args.levels:
        subset = args.c1_subset if conc == 1 else args.requests
        before = lm.engine.stats.decode_row_steps, lm.engine.stats.decode_steps
        if conc == 1 and peers:
            runs = interleaved([lm, *(peer["model"] for peer in peers)], requests[:subset])
            tok, sec, cpu, texts = runs[0]
            for peer, (p_tok, p_sec, _, p_texts) in zip(peers, runs[1:], strict=True):
                peer_c1[peer["label"]] = (p_tok, p_sec, p_texts)
                console.print(f"{peer['label']} c=1 (interleaved with {dtype}): {p_tok} tokens in {p_sec:.1f} s", style="dim")  # fmt: skip
        else:
            cpu = time.process_time()
            tok, sec, texts = engine(lm, requests[:subset], conc)
            cpu = time.process_time() - cpu
        greedy[conc] = texts
        rows_per_step = (lm.engine.stats.decode_row_steps - before[0]) / max(
            1, lm.engine.stats.decode_steps - before[1]
        )
        paired = ", interleaved with llama.cpp" if conc == 1 and peers else ""
        setting = f"engine, concurrency {conc} ({subset} req, mean batch {rows_per_step:.1f}{paired})"
        rows.append((setting, tok, sec, cpu))
        tps[conc] = tok / sec
        console.print(
            f"{dtype} engine c={conc}: {tok} tokens in {sec:.1f} s ({cpu:.1f} s process CPU)", style="dim"
        )
    tuner = lm.engine.tuner
    console.print(
        f"{dtype} thread choices (s for 24 matmuls at 1 thread, at {TORCH_DEFAULT_THREADS}, chosen): "
        f"{tuner.history if tuner else 'fixed'}",
        style="dim",
    )
    console.print(f"{dtype} engine stats: {lm.engine.stats}", style="dim")
    n_params = sum(p.numel() for p in lm.model.parameters())
    lm.close()
    return {"rows": rows, "tps": tps, "n_params": n_params, "greedy": greedy, "peer_c1": peer_c1}


def open_peer(
    stack: contextlib.ExitStack,
    kind: str,
    args: argparse.Namespace,
    requests: list[GenerationRequest],
    console: Console,
) -> dict:
    """Start llama.cpp's server (`kind`: "xllamacpp" or a llama-server path) on the shipped GGUF, with
    continuous batching over `max(levels)` slots, reached through our `openai:` backend; it stays up
    (in `stack`) for the engine's interleaved single stream. Measures its top concurrency here."""
    slots = max(args.levels)
    label = "xllamacpp" if kind == "xllamacpp" else Path(kind).name
    url = stack.enter_context(llamacpp_peer.serve(kind, embedded.gguf_path(), slots, TORCH_DEFAULT_THREADS))
    lm = OpenAIModel("smollm2", url, concurrency=slots, timeout=900.0, retries=0)
    stack.callback(lm.close)
    lm.generate([GenerationRequest.chat("Warm up.", max_new_tokens=4)])
    rows: list = []
    tps: dict = {}
    greedy: dict[int, dict[int, str]] = {}
    if slots > 1:
        tok, sec, texts = engine(lm, requests[: args.requests], slots)
        greedy[slots] = texts
        rows.append(
            (f"llama.cpp {label}, concurrency {slots} ({args.requests} req, {slots} slots)", tok, sec, None)
        )
        tps[slots] = tok / sec
        console.print(f"{label} c={slots}: {tok} tokens in {sec:.1f} s", style="dim")
    return {"label": label, "model": lm, "rows": rows, "tps": tps, "greedy": greedy}


def print_agreement(
    console: Console, label: str, ours: dict[int, dict[int, str]], theirs: dict[int, dict[int, str]]
) -> None:
    """Greedy-output agreement per concurrency both sides measured: a variant's few-row formats (the
    lean decode path) serve every step at concurrency 1 but only a batch's last rows at 64."""
    for conc in sorted(ours.keys() & theirs.keys()):
        same, n, prefix = llamacpp_peer.agreement(ours[conc], theirs[conc])
        console.print(
            f"greedy agreement, {label}, concurrency {conc}: {same}/{n} identical texts, "
            f"mean shared prefix {prefix:.2f} of the text"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=64)
    parser.add_argument("--naive-subset", type=int, default=8, help="requests timed with naive generate")
    parser.add_argument("--c1-subset", type=int, default=16, help="requests timed at engine concurrency 1")
    parser.add_argument(
        "--dtypes",
        default="auto",
        help="variants to measure, float32 first (bfloat16 is skipped where the CPU lacks native bf16); "
        "auto = float32, bfloat16 and the fastest single-stream format (`default_variants`)",
    )
    parser.add_argument("--levels", default="1,8,64", help="client concurrencies to measure")
    parser.add_argument("--no-peer", action="store_true", help="skip llama.cpp's server")
    parser.add_argument("--llama-server", default=None, help="llama-server binary (default: PATH)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    for name in ("requests", "naive_subset", "c1_subset"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1 (a ratio needs timed requests)")
    args.levels = sorted({int(x) for x in args.levels.split(",")})
    console = Console(width=150)
    dtypes = (
        default_variants()
        if args.dtypes == "auto"
        else [d.strip() for d in args.dtypes.split(",") if d.strip()]
    )
    if any(d.startswith("bfloat16") for d in dtypes) and not bf16_native():
        console.print("this CPU has no native bf16 matmul: measuring float32 only", style="yellow")
        dtypes = [d for d in dtypes if not d.startswith("bfloat16")]
    requests = workload(args.requests, args.seed)
    peers = [] if args.no_peer else llamacpp_peer.peers(args.llama_server)
    if not args.no_peer and not peers:
        console.print("no llama.cpp peer: pip install -e '.[bench]' (xllamacpp)", style="yellow")
    with contextlib.ExitStack() as stack:
        peer_results = [open_peer(stack, kind, args, requests, console) for kind in peers]
        results = {dtype: measure(dtype, requests, args, console, peer_results) for dtype in dtypes}
    main_dtype = "float32" if "float32" in results else dtypes[0]
    for peer in peer_results:  # its single stream as timed beside the main variant's
        if peer["label"] in results[main_dtype]["peer_c1"]:
            tok, sec, texts = results[main_dtype]["peer_c1"][peer["label"]]
            peer["rows"].insert(0, (f"llama.cpp {peer['label']}, concurrency 1 ({args.c1_subset} req, interleaved with the {main_dtype} engine)", tok, sec, None))  # fmt: skip
            peer["tps"][1] = tok / sec
            peer["greedy"][1] = texts
    torch_dtypes = {"float32": torch.float32, "bfloat16": torch.bfloat16}
    gflops = {d: matmul_gflops(torch_dtypes[d]) for d in {"float32", *(v.partition("+")[0] for v in dtypes)}}
    n_params = next(iter(results.values()))["n_params"]
    ceilings = {d: g * 1e9 / (2 * n_params) for d, g in gflops.items()}

    table = Table(
        title=f"generation throughput, {embedded.EMBEDDED_NAME} ({n_params / 1e6:.1f}M params), cpu"
    )
    for column in [
        "dtype",
        "setting",
        "tokens",
        "seconds",
        "tokens/s",
        "process CPU s",
        "of fp32 ceiling",
        "of own-dtype ceiling",
    ]:
        table.add_column(column, justify="left" if column in ("dtype", "setting") else "right")
    for dtype, res in results.items():
        for name, tok, sec, cpu in res["rows"]:
            tps = tok / sec
            table.add_row(
                dtype,
                name,
                str(tok),
                f"{sec:.1f}",
                f"{tps:.1f}",
                f"{cpu:.1f}",
                f"{tps / ceilings['float32']:.3f}",
                f"{tps / ceilings[dtype.partition('+')[0]]:.3f}",
            )
    for dtype, g in gflops.items():
        table.add_row(
            dtype,
            "matmul 2048x2048 GFLOP/s -> ceiling tok/s",
            "",
            "",
            f"{ceilings[dtype]:.0f}",
            "",
            "",
            f"{g:.0f} GF/s",
        )
    for peer in peer_results:
        for name, tok, sec, _ in peer["rows"]:
            tps = tok / sec
            table.add_row(
                "gguf",
                name,
                str(tok),
                f"{sec:.1f}",
                f"{tps:.1f}",
                "(server)",
                f"{tps / ceilings['float32']:.3f}",
                "",
            )
    console.print(table)
    top = max(args.levels)
    if "bfloat16" in results:
        b = results["bfloat16"]["tps"]
        console.print(
            f"bfloat16: engine_vs_naive={b[top] / b['naive']:.2f}, {b[top]:.1f} tok/s at {top} = "
            f"{b[top] / ceilings['float32']:.3f} of the fp32 ceiling, {b[top] / ceilings['bfloat16']:.3f} of the bf16 ceiling"
        )
    t = results[main_dtype]["tps"]
    for variant, res in results.items():  # what a variant's weights change, against the dense model
        if variant != main_dtype:
            print_agreement(
                console, f"engine {main_dtype} vs {variant}", results[main_dtype]["greedy"], res["greedy"]
            )
    extra = ""
    if peer_results:
        peer = peer_results[0]
        p = peer["tps"]
        console.print(llamacpp_peer.gguf_summary(embedded.gguf_path()))
        if "xllamacpp" in peers:
            console.print(llamacpp_peer.xllamacpp_system_info())
        for other in peer_results:
            print_agreement(
                console,
                f"engine {main_dtype} vs {other['label']}",
                results[main_dtype]["greedy"],
                other["greedy"],
            )
            if 1 in other["tps"] and 1 in t:
                console.print(
                    f"single stream: engine {t[1]:.1f} tok/s vs {other['label']} {other['tps'][1]:.1f} tok/s "
                    f"= {t[1] / other['tps'][1]:.2f}"
                )
        extra = f" engine_vs_llamacpp={t[top] / p[top]:.2f}"
        if 1 in p and 1 in t:
            extra += f" engine_vs_llamacpp_c1={t[1] / p[1]:.2f}"
        for variant, res in results.items():  # every other variant (bf16, int8) against the same peer
            if variant != main_dtype:
                v = res["tps"]
                extra += f" {variant}_vs_llamacpp={v[top] / p[top]:.2f}"
                if 1 in v and peer["label"] in res["peer_c1"]:  # the peer timed beside this variant
                    p_tok, p_sec, _ = res["peer_c1"][peer["label"]]
                    extra += f" {variant}_vs_llamacpp_c1={v[1] / (p_tok / p_sec):.2f}"
    print(
        f"RESULT engine_vs_naive={t[top] / t['naive']:.2f} ceiling_fraction={t[top] / ceilings['float32']:.3f} "
        f"tokens_per_s={t[top]:.1f}{extra}"
    )


if __name__ == "__main__":
    main()
