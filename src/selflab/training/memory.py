"""Training memory: when to checkpoint activations, and how TRL's fused LM head runs on CPU.

Measured on the embedded model (DPO + LoRA, batch 4 x ~310 tokens, chosen and rejected = 8 rows;
issue #17, docs/performance.md), peak RSS 9.6 GB went to two places:

- activations saved for backward: 3.8 GB (50.7 KB per token per layer: the MLP's 1536-wide
  tensors, LoRA inputs, attention q/k/v, norms). Gradient checkpointing keeps only each layer's
  input and recomputes the rest during backward, at the price of one more forward pass of the
  policy. `gradient_checkpointing="auto"` turns it on only when one batch's activations would exceed
  `activation_budget_mb`, so small batches keep their speed;
- TRL's fused LM head (`trl.kernels.ChunkedLogProbFunction`) never builds the full logits, but its
  tiles are 4096 tokens x 32768 vocabulary columns (512 MB in fp32), sized for GPUs. On CPU every
  tile is folded with plain torch ops, each of which allocates another tile-sized temporary (scale,
  exp, masks for the top-1 metric, ...), about 3 GB in all at this shape. Smaller tiles give the
  same numbers (the fold is an online log-sum-exp) from a few tens of MB, and stay in cache.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

# Tokens x vocabulary columns of one log-prob tile on CPU (TRL's defaults: 4096 x 32768).
CPU_TILE_TOKENS = 512
CPU_TILE_VOCAB = 8192


def activation_bytes_per_token(hidden: int, intermediate: int, layers: int, dtype_bytes: int = 4) -> int:
    """Bytes autograd keeps per trained token for a Llama-style decoder with LoRA on every linear layer.

    Per layer about 12 hidden-wide and 4 intermediate-wide tensors (norm inputs and outputs, q/k/v,
    attention output, linear inputs; gate, up, SiLU output, down input): 52 KB at 576/1536 fp32, where
    saved-tensor hooks measured 50.7 KB on SmolLM2-135M."""
    return layers * dtype_bytes * (12 * hidden + 4 * intermediate)


def batch_tokens(lengths: list[int], batch_size: int, max_length: int, rows_per_example: int) -> int:
    """Tokens of the largest batch: the longest examples, each padded to the longest of them."""
    if not lengths:
        return 0
    longest = min(max(lengths), max_length)
    return longest * min(batch_size, len(lengths)) * rows_per_example


def row_tokens(tokenizer: Any, row: dict[str, Any]) -> int:
    """About the tokens of one conversational example's longest sequence: its prompt plus its
    longest answer, with a few chat-template tokens per message."""

    def count(messages: list[dict[str, Any]]) -> int:
        text = "\n".join(str(m.get("content", "")) for m in messages)
        return len(tokenizer(text, add_special_tokens=False)["input_ids"]) + 8 * len(messages)

    prompt = row.get("prompt") or row.get("messages") or []
    answers = [row[k] for k in ("completion", "chosen", "rejected") if isinstance(row.get(k), list)]
    return count(prompt) + max((count(a) for a in answers), default=0)


def wants_checkpointing(
    setting: bool | str,
    rows: list[dict[str, Any]],
    tokenizer: Any,
    config: Any,
    batch_size: int,
    max_length: int,
    rows_per_example: int,
    budget_mb: int,
) -> bool:
    """`True`/`False` as asked; `"auto"`: when the largest batch's saved activations would exceed
    `budget_mb`."""
    if setting != "auto":
        return bool(setting)
    hidden, intermediate, layers = model_shape(config)
    lengths = [row_tokens(tokenizer, r) for r in rows]
    tokens = batch_tokens(lengths, batch_size, max_length, rows_per_example)
    return tokens * activation_bytes_per_token(hidden, intermediate, layers) > budget_mb * (1 << 20)


def model_shape(config: Any) -> tuple[int, int, int]:
    """(hidden, intermediate, layers) of a transformers config, with Llama-like fallbacks."""
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    hidden = int(getattr(text, "hidden_size", 0) or 0)
    intermediate = int(getattr(text, "intermediate_size", 0) or 4 * hidden)
    layers = int(getattr(text, "num_hidden_layers", 0) or 0)
    return hidden, intermediate, layers


@contextmanager
def cpu_fused_head(
    on_cpu: bool, tokens: int = CPU_TILE_TOKENS, vocab: int = CPU_TILE_VOCAB
) -> Iterator[None]:
    """Within the block, TRL's fused LM head on CPU uses `tokens` x `vocab` tiles and projects only
    the positions that carry a label.

    TRL projects every position (prompt and padding included, their log-probs then zeroed) on
    devices without Triton, because on XLA/Neuron a varying number of positions recompiles the
    graph; eager CPU has no such cost, so the label positions alone are scored, as on GPUs. Same
    loss. `benchmarks/training.py --methods dpo --modes lora` (prompts half of each sequence; AMX
    Xeon, alternated runs): 111.5 / 119.9 -> 127.9 / 130.5 tokens/s; SFT at the main job's shape
    unchanged within this VM's noise (the small tiles already made the skipped positions cheap).

    The sizes and the device test are module globals TRL reads at call time; they are restored
    afterwards. A TRL version without them is left alone."""
    if not on_cpu:
        yield
        return
    try:
        import trl.kernels.chunked_logprob as kernel
        import trl.trainer.utils as trl_utils
    except ImportError:
        yield
        return
    saved = []
    for module, name, value in (
        (kernel, "TOKEN_CHUNK_SIZE", tokens),
        (trl_utils, "_CHUNKED_LOGPROB_CHUNK_SIZE", vocab),
    ):
        if isinstance(getattr(module, name, None), int):
            saved.append((module, name, getattr(module, name)))
            setattr(module, name, value)
    device_test = getattr(trl_utils, "_use_triton", None)
    if callable(device_test):
        saved.append((trl_utils, "_use_triton", device_test))
        trl_utils._use_triton = lambda device: device.type == "cpu" or device_test(device)
    try:
        yield
    finally:
        for module, name, value in saved:
            setattr(module, name, value)
