"""Weight-only int8 for small-batch decoding on CPU (`hf:PATH?quant=int8`).

A decode step with few rows streams every weight from memory for a handful of multiply-adds each,
so it runs at memory speed: int8 weights are a quarter of fp32's bytes and half of bf16's. PyTorch
ships the kernel, `aten._weight_int8pack_mm` (int8 weights with one scale per output channel,
bf16 activations), the one gpt-fast uses on CPU. Measured on the shared 2-core AMD EPYC (AVX-512 with
native bf16), 1 thread, process CPU time for the 210 decoder matmuls plus the LM head of SmolLM2-135M
(`docs/performance.md`):

    rows per matmul      1        8        32       64
    fp32              49 ms    82 ms   153 ms   255 ms
    bf16              41 ms    48 ms    82 ms   130 ms
    int8 (bf16 act.)  20 ms    49 ms   159 ms   304 ms

So int8 pays only for a few rows (a single stream, a small batch); `Int8Linear` keeps the dense
layer for more rows (large decode batches, prefill), whose numbers are then unchanged. The int8
path computes in bf16 (activations and output), so its numbers are close to, not equal to, the
dense model's.
"""

from __future__ import annotations

import torch
from torch import nn

# Rows (tokens) up to which a matmul uses the int8 weights; above it the dense layer is faster.
INT8_MAX_ROWS = 4
QUANT_CHOICES = ("none", "int8")


def int8_available() -> bool:
    return hasattr(torch.ops.aten, "_weight_int8pack_mm")


class Int8Linear(nn.Module):
    """A linear layer with an int8 copy of its weight (symmetric, per output channel) used for
    inputs of at most `max_rows` rows; the original layer serves everything else."""

    def __init__(self, dense: nn.Linear, max_rows: int = INT8_MAX_ROWS) -> None:
        super().__init__()
        self.dense = dense
        self.max_rows = max_rows
        w = dense.weight.detach().float()
        scale = w.abs().amax(dim=1).clamp(min=1e-12) / 127.0
        self.register_buffer("qweight", (w / scale[:, None]).round().clamp(-127, 127).to(torch.int8))
        self.register_buffer("scales", scale.to(torch.bfloat16))

    @property
    def weight(self) -> torch.Tensor:  # callers read the dense weight's shape (vocabulary width)
        return self.dense.weight

    @property
    def bias(self) -> torch.Tensor | None:
        return self.dense.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.numel() // x.shape[-1]
        if rows > self.max_rows or rows == 0 or x.device.type != "cpu" or torch.is_grad_enabled():
            return self.dense(x)
        flat = x.reshape(rows, x.shape[-1]).to(torch.bfloat16).contiguous()
        out = torch.ops.aten._weight_int8pack_mm(flat, self.qweight, self.scales)
        if self.dense.bias is not None:
            out = out + self.dense.bias.to(out.dtype)
        return out.to(x.dtype).reshape(*x.shape[:-1], out.shape[-1])


def quantize_int8(model: nn.Module, max_rows: int = INT8_MAX_ROWS) -> int:
    """Give every `nn.Linear` of `model` (the LM head included) an int8 copy for small inputs, in
    place. Returns the number of layers wrapped. Tied weights stay tied: the dense layer is kept."""
    targets = [
        (parent, name, child)
        for parent in model.modules()
        for name, child in parent.named_children()
        if type(child) is nn.Linear
    ]
    for parent, name, child in targets:
        setattr(parent, name, Int8Linear(child, max_rows))
    return len(targets)
