"""Training throughput on the embedded model: SFT and DPO, LoRA and full fine-tuning.

For each configuration: tokens/s over timed optimizer steps (the first step is warm-up and not
timed), the fraction of the compute ceiling, and peak RSS (each configuration runs in its own
process, so its peak is its own).

FLOPs per trained token, N = parameters that take part in matmuls (with tied embeddings that is
every parameter, because the output projection reuses the embedding matrix), plus attention
score/value FLOPs A = 4 * layers * d_model * mean_context per forward token:
  full fine-tuning: forward 2N+A, backward 4N+2A              -> 6N + 3A
  LoRA: forward 2N+A, backward only activation gradients 2N+2A
        (frozen weights get no weight gradient; the adapters are < 1% of N) -> 4N + 3A
  DPO adds a reference forward pass per token (2N + A): full 8N + 4A, LoRA 6N + 4A
  (with LoRA the reference is the adapter-off base, still a full forward pass).
Ceiling tokens/s = measured fp32 matmul FLOP/s / FLOPs per token.

Run:  python benchmarks/training.py [--steps 4] [--batch 4] [--seq 256]
Last line:  RESULT dpo_ceiling_fraction=<x> sft_ceiling_fraction=<y> peak_rss_gb=<z>
(the RESULT fractions are for the library default, LoRA, when measured; full fine-tuning otherwise.
 --methods/--modes pick a subset, e.g. on a loaded machine.)
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import resource
import sys
import tempfile
import time
from pathlib import Path


def matmul_gflops(size: int = 1024, seconds: float = 3.0) -> float:
    """Best sustained fp32 GEMM rate of this machine (all torch threads)."""
    import torch

    a = torch.randn(size, size)
    b = torch.randn(size, size)
    for _ in range(3):
        a @ b
    best = 0.0
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        t = time.perf_counter()
        for _ in range(5):
            a @ b
        dt = time.perf_counter() - t
        best = max(best, 5 * 2 * size**3 / dt / 1e9)
    return best


def _rows(method: str, n: int, seq: int, seed: int) -> list[dict]:
    """Synthetic conversational rows whose prompt and answer are each about seq/2 tokens."""
    import random

    rng = random.Random(seed)
    words = "the model learns from its own answers when a verifier accepts them and a judge agrees".split()

    def text(k: int) -> str:
        return " ".join(rng.choice(words) for _ in range(k))

    half = max(8, seq // 2)
    rows = []
    for _ in range(n):
        if method == "sft":
            rows.append({"prompt": text(half), "completion": text(half)})
        else:
            rows.append({"prompt": text(half), "chosen": text(half), "rejected": text(half)})
    return rows


def _worker(method: str, lora: bool, steps: int, batch: int, seq: int, threads: int, queue: mp.Queue) -> None:
    import torch

    if threads > 0:
        torch.set_num_threads(threads)
    from transformers import TrainerCallback

    from selflab.models import embedded
    from selflab.training import TrainConfig, train

    class Timer(TrainerCallback):
        def __init__(self) -> None:
            self.times: list[float] = []
            self.tokens: list[int] = []
            self._t = 0.0

            self.cpu: list[float] = []
            self._c = 0.0

        def on_step_begin(self, args, state, control, **kw):  # type: ignore[no-untyped-def]
            self._t = time.perf_counter()
            self._c = time.process_time()

        def on_step_end(self, args, state, control, **kw):  # type: ignore[no-untyped-def]
            self.times.append(time.perf_counter() - self._t)
            self.cpu.append(time.process_time() - self._c)

    timer = Timer()
    rows = _rows(method, steps * batch, seq, seed=0)
    cfg = TrainConfig(lora=lora, max_steps=steps, batch_size=batch, max_length=seq * 2, logging_steps=1)
    with tempfile.TemporaryDirectory() as tmp:
        result = train(method, embedded.prepare(), rows, Path(tmp) / "ckpt", cfg, callbacks=[timer])
    from transformers import AutoConfig

    mc = AutoConfig.from_pretrained(embedded.prepare())
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    queue.put(
        {
            "method": method,
            "lora": lora,
            "step_seconds": timer.times,
            "step_cpu_seconds": timer.cpu,
            "gradient_checkpointing": result.extra.get("gradient_checkpointing"),
            "tokens_per_epoch": result.tokens,
            "examples": result.examples,
            "total_params": result.total_params if not lora else None,
            "trainable_params": result.trainable_params,
            "layers": mc.num_hidden_layers,
            "d_model": mc.hidden_size,
            "tied": bool(getattr(mc, "tie_word_embeddings", False)),
            "peak_rss_gb": peak_gb,
            "threads": torch.get_num_threads(),
        }
    )


def run_config(method: str, lora: bool, steps: int, batch: int, seq: int, threads: int = 0) -> dict:
    ctx = mp.get_context("spawn")
    q: mp.Queue = ctx.Queue()
    p = ctx.Process(target=_worker, args=(method, lora, steps, batch, seq, threads, q))
    p.start()
    out = q.get()
    p.join()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seq", type=int, default=256, help="tokens per sequence (prompt + answer)")
    ap.add_argument("--methods", default="sft,dpo", help="comma-separated subset of sft,dpo")
    ap.add_argument("--modes", default="lora,full", help="comma-separated subset of lora,full")
    ap.add_argument(
        "--threads", type=int, default=0, help="torch threads in the trainers (0: torch's default)"
    )
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    if args.steps < 2:
        sys.exit("--steps must be >= 2 (the first step is warm-up)")

    from transformers import AutoModelForCausalLM

    from selflab.models import embedded

    if args.threads > 0:
        import torch

        torch.set_num_threads(args.threads)
    gflops = matmul_gflops()
    m = AutoModelForCausalLM.from_pretrained(embedded.prepare())
    n_params = sum(p.numel() for p in m.parameters())
    del m
    print(f"fp32 matmul: {gflops:.1f} GFLOP/s; model parameters N = {n_params / 1e6:.1f}M")

    results = []
    methods = [m for m in args.methods.split(",") if m in ("sft", "dpo")]
    modes = [m == "lora" for m in args.modes.split(",") if m in ("lora", "full")]
    for method in methods:
        for lora in modes:
            r = run_config(method, lora, args.steps, args.batch, args.seq, args.threads)
            # Every timed step sees batch examples; tokens per example from the processed dataset.
            tok_per_example = r["tokens_per_epoch"] / max(1, r["examples"])
            timed = r["step_seconds"][1:]
            tok_s = args.batch * tok_per_example * len(timed) / sum(timed)
            mean_ctx = args.seq / 2
            attn = 4 * r["layers"] * r["d_model"] * mean_ctx
            if method == "sft":
                flops_tok = (4 if lora else 6) * n_params + 3 * attn
            else:
                flops_tok = (6 if lora else 8) * n_params + 4 * attn
            ceiling = gflops * 1e9 / flops_tok
            r.update(
                tokens_per_s=tok_s,
                flops_per_token=flops_tok,
                ceiling_tokens_per_s=ceiling,
                fraction=tok_s / ceiling,
            )
            results.append(r)
            mode = "LoRA" if lora else "full"
            print(
                f"{method.upper():3s} {mode:4s}: {tok_s:7.1f} tok/s  ceiling {ceiling:7.1f} tok/s  "
                f"fraction {tok_s / ceiling:.3f}  step {sum(timed) / len(timed):.2f}s  "
                f"peak RSS {r['peak_rss_gb']:.2f} GB  trainable {r['trainable_params'] / 1e6:.2f}M  "
                f"checkpointing {r['gradient_checkpointing']}  cpu {sum(r['step_cpu_seconds'][1:]) / len(timed):.2f} s/step"
            )
    if args.json:
        args.json.write_text(json.dumps({"gflops": gflops, "results": results}, indent=2))
    pick = {(r["method"], r["lora"]): r for r in results}

    def frac(method: str) -> str:
        # LoRA (the library default) when measured, else full fine-tuning, else nan
        r = pick.get((method, True)) or pick.get((method, False))
        return f"{r['fraction']:.4f}" if r else "nan"

    peak = max((r["peak_rss_gb"] for r in results), default=float("nan"))
    print(
        f"RESULT dpo_ceiling_fraction={frac('dpo')} sft_ceiling_fraction={frac('sft')} peak_rss_gb={peak:.2f}"
    )


if __name__ == "__main__":
    main()
