"""Weight-only int8 and int4 for small-batch decoding on CPU (`hf:PATH?quant=int8|int4`).

A decode step with few rows streams every weight from memory for a handful of multiply-adds each,
so it runs at memory speed: int8 weights are a quarter of fp32's bytes, int4 an eighth. PyTorch
ships both kernels, with bf16 activations: `aten._weight_int8pack_mm` (one scale per output
channel) and `aten._weight_int4pack_mm_for_cpu` (asymmetric, one bf16 scale and zero per group of
32/64/128 inputs; the "tinygemm" layout torchao's `Int4WeightOnlyConfig` packs for CPU). Measured
on the shared 2-core AMD EPYC (AVX-512 with native bf16), 1 thread, process CPU time for the 210
decoder matmuls plus the LM head of SmolLM2-135M (`docs/performance.md`, `docs/int4.md`):

    rows per matmul          1        4       16       24       32
    fp32                  48 ms    67 ms   109 ms   126 ms   161 ms
    bf16                  38 ms    43 ms    65 ms    83 ms    83 ms
    int8 (bf16 act.)      19 ms    29 ms    85 ms   123 ms   152 ms
    int4 g32 (bf16 act.)   9 ms    15 ms    56 ms    84 ms   109 ms

So the quantised kernels pay only for few rows (a single stream, a small batch); the wrappers keep
the dense layer for more rows (large decode batches, prefill) and under autograd, whose numbers are
then unchanged. The quantised paths compute in bf16, so their numbers are close to, not equal to,
the dense model's. (The int4 kernel also takes fp32 activations, exactly, but ~25x slower: it has
no vectorised fp32 path.) torchao wraps the same int4 kernel in a tensor subclass that replaces the
weight; we call the two aten ops directly because the layer must keep its dense weight for many rows
and training, and the packing is a few lines. Fusing q/k/v and gate/up into one int4 matmul was
measured and saves nothing here (22.5 vs 22.6 CPU ms per batch-1 step), so layers stay separate.
"""

from __future__ import annotations

import torch
from torch import nn

from selflab.errors import ModelSpecError
from selflab.models.engine_decode import unsupported_reason
from selflab.models.engine_formats import DECODE_FORMATS, int8_dynamic_available
from selflab.models.lowbit import (
    INT4_DEFAULT_GROUP,
    INT4_GROUP_SIZES,
    INT4_MAX_ROWS,
    INT8_MAX_ROWS,
    int4_available,
    int4_group_for,
    int4_group_of,
    int8_available,
    pack_int4,
    pack_int8,
)

# The last two are decode formats of the lean single-stream path (`engine_decode`), not layer wrappers.
QUANT_CHOICES = ("none", "int8", "int4", *(f"int4-g{g}" for g in INT4_GROUP_SIZES), *DECODE_FORMATS)


def _dense_is_better(x: torch.Tensor, max_rows: int) -> bool:
    rows = x.numel() // x.shape[-1]
    return rows > max_rows or rows == 0 or x.device.type != "cpu" or torch.is_grad_enabled()


class SmallBatchLinear(nn.Module):
    """A linear layer with a quantised copy of its weight for inputs of at most `max_rows` rows
    (in bf16); the original layer serves everything else, autograd included. `weight`/`bias` are
    the dense layer's, so callers read the right shapes and tied weights stay tied. Subclasses
    give the kernel (`_small`)."""

    def __init__(self, dense: nn.Linear, max_rows: int) -> None:
        super().__init__()
        self.dense = dense
        self.max_rows = max_rows

    @property
    def weight(self) -> torch.Tensor:  # callers read the dense weight's shape (vocabulary width)
        return self.dense.weight

    @property
    def bias(self) -> torch.Tensor | None:
        return self.dense.bias

    def _small(self, flat: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if _dense_is_better(x, self.max_rows):
            return self.dense(x)
        flat = x.reshape(-1, x.shape[-1]).to(torch.bfloat16).contiguous()
        out_features = self.dense.out_features
        out = self._small(flat)[:, :out_features]  # int4's kernel pads the outputs to 16
        if self.dense.bias is not None:
            out = out + self.dense.bias.to(out.dtype)
        return out.to(x.dtype).reshape(*x.shape[:-1], out_features)


class Int8Linear(SmallBatchLinear):
    """An int8 copy of the weight (symmetric, per output channel) for small inputs."""

    def __init__(self, dense: nn.Linear, max_rows: int = INT8_MAX_ROWS) -> None:
        super().__init__(dense, max_rows)
        qweight, scales = pack_int8(dense.weight)
        self.register_buffer("qweight", qweight)
        self.register_buffer("scales", scales)

    def _small(self, flat: torch.Tensor) -> torch.Tensor:
        return torch.ops.aten._weight_int8pack_mm(flat, self.qweight, self.scales)


def quantize_int8(model: nn.Module, max_rows: int = INT8_MAX_ROWS) -> int:
    """Give every `nn.Linear` of `model` (the LM head included) an int8 copy for small inputs, in
    place. Returns the number of layers wrapped. Tied weights stay tied: the dense layer is kept."""
    targets = _linears(model)
    for parent, name, child in targets:
        setattr(parent, name, Int8Linear(child, max_rows))
    return len(targets)


# ---------------------------------------------------------------------------------------- int4


class Int4Linear(SmallBatchLinear):
    """A 4-bit group-wise copy of the weight for small inputs."""

    def __init__(self, dense: nn.Linear, group_size: int, max_rows: int | None = None) -> None:
        super().__init__(
            dense, max_rows if max_rows is not None else INT4_MAX_ROWS.get(dense.weight.dtype, 16)
        )
        self.group_size = group_size
        packed, scale_zero = pack_int4(dense.weight, group_size)
        self.register_buffer("packed", packed, persistent=False)
        self.register_buffer("scale_zero", scale_zero, persistent=False)

    def extra_repr(self) -> str:
        return f"group_size={self.group_size}, max_rows={self.max_rows}"

    def _small(self, flat: torch.Tensor) -> torch.Tensor:
        return torch.ops.aten._weight_int4pack_mm_for_cpu(flat, self.packed, self.group_size, self.scale_zero)


def quantize_int4(model: nn.Module, group_size: int = INT4_DEFAULT_GROUP, max_rows: int | None = None) -> int:
    """Give every `nn.Linear` of `model` a 4-bit copy for small inputs, in place, except the output
    layer (LM head), which gets the int8 copy. Returns the number of layers wrapped (a layer whose
    input width no supported group size divides stays dense). Tied weights stay tied.

    The head keeps 8 bits as llama.cpp's Q4 files keep it (the embedded GGUF stores it as Q8_0):
    4 bits there cost the most accuracy (8.5% weight error on SmolLM2's head against 0.44% on its
    decoder layers, whose values already lie on a Q4_1 grid) for ~2 ms per batch-1 step."""
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    wrapped = 0
    for parent, name, child in _linears(model):
        group = int4_group_for(child.in_features, group_size)
        if child is head:
            setattr(parent, name, Int8Linear(child))
        elif group is not None:
            setattr(parent, name, Int4Linear(child, group, max_rows))
        else:
            continue
        wrapped += 1
    return wrapped


# ---------------------------------------------------------------------------------------- spec


def _linears(model: nn.Module) -> list[tuple[nn.Module, str, nn.Linear]]:
    return [
        (parent, name, child)
        for parent in model.modules()
        for name, child in parent.named_children()
        if type(child) is nn.Linear
    ]


def apply_quant(model: nn.Module, quant: str, device: torch.device) -> str:
    """Apply the `quant=` option of an `hf:` spec in place; returns it. Raises `ModelSpecError`
    naming the valid values for an unknown one, and when the kernel is missing here. `int8`/`int4`
    wrap the layers of models the lean decode path cannot serve; llama-family models get the lean
    path instead (`engine_decode`), built by the engine's owner from the unwrapped layers."""
    if quant not in QUANT_CHOICES:
        raise ModelSpecError(
            f"unknown quant '{quant}'",
            f"use one of {', '.join(QUANT_CHOICES)} (int4 = int4-g{INT4_DEFAULT_GROUP})",
        )
    if quant == "none":
        return quant
    if quant in DECODE_FORMATS:  # the engine decodes few rows with its own copies (`engine_decode`)
        reason = unsupported_reason(model)
        if device.type != "cpu":
            reason = f"the model is on {device.type}, not a CPU"
        elif reason is None and quant == "int8-dynamic" and not int8_dynamic_available():
            reason = "int8-dynamic needs a CPU with fbgemm (x86)"
        if reason is not None:
            raise ModelSpecError(
                f"quant={quant} is the CPU fast decode path, which cannot serve this model here: {reason}",
                f"drop quant={quant}, or use quant=int8 / int4 (any architecture)",
            )
        return quant
    kind = quant.partition("-")[0]
    available = int8_available() and (kind == "int8" or int4_available())  # int4's head is int8
    if device.type != "cpu" or not available:
        raise ModelSpecError(
            f"quant={quant} is a CPU weight-only {kind} kernel of PyTorch, not available here",
            f"drop quant={quant} (on GPUs use the vllm: backend's quantisation)",
        )
    if unsupported_reason(model) is None:
        # A llama-family model decodes few rows on the lean path with fused copies in this format
        # (`engine_decode.decode_plan`) and keeps its dense forward for everything else, so a
        # prompt's numbers never depend on how many rows a forward had (a wrapper would quantise a
        # short prefill but not a long one, so a prefix-cache hit would change them).
        return quant
    if kind == "int8":
        quantize_int8(model)
    else:
        quantize_int4(model, int4_group_of(quant))
    return quant
