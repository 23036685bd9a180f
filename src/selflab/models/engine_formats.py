"""Decode formats: the weights of one projection (or several, fused) as the lean decode step
(`engine_decode`, `engine_layers`) multiplies them (a `Projection` record), and its rms-norms (`Norm`).

- `dense` (the default of every CPU model it can serve, `quant=none`): the model's own numbers.
  q|k|v and gate|up are fused copies, and in fp32 every projection and the head also get an
  MKL-packed copy (`torch.ops.mkl._mkl_linear`, the kernel inductor uses for frozen fp32 linears),
  used from 4 rows up (a plain call packs the weight operand anew each time, as GEMM libraries do); the
  121 fused matmuls of one SmolLM2-135M step take, at 4 / 8 / 13 / 16 rows, 50 / 67 / 90 / 73 ms plain
  against 34 / 41 / 50 / 52 ms packed (2 threads, a 2-core Intel Xeon with AMX); at 1-3 rows the
  same as plain, so plain `F.linear` keeps a single stream's logits equal to the model's forward
  bit for bit. Copies are made only while they fit `COPY_LIMIT_MB` (SmolLM2-135M fp32: 818 MB);
  a larger model decodes with its own weights, unfused. Rows: up to 32 with packing (16 -> 32 gave
  concurrency 64 +8% in two alternated pairs; serving every step, no more), 4 without.
  Measured on that Xeon, the generation benchmark's requests, alternated runs against the
  previous engine: concurrency 1 +27-62%, concurrency 8 72.0 / 76.0 -> 89.0 / 92.8 tok/s (+38%
  with kernels limited to AVX2), concurrency 64 unchanged; every greedy text the same.
  `hf:PATH?lean_decode=false` turns it off;
- `fp16`: half-precision weights, fp32 accumulation (`F.linear` in fp16); no batch coupling, ~0.1%
  error; pays up to 4 rows (2 threads: 1 row 28 vs 64 ms for all matmuls, 4 rows 93 vs 159 ms, 8
  rows 187 vs 153 ms);
- `int8-dynamic`: int8 weights per output channel with activations quantised per call (fbgemm's
  `quantized::linear_dynamic`, as llama.cpp quantises activations to 8 bits for its Q4/Q8 dot
  products); 24 ms at 1 row. The activation scale is one per tensor, so rows of a batch would
  change each other's numbers: it serves a single row only.

The weight-only formats of `quant=int8` and `quant=int4[-gN]` (`selflab.models.lowbit`; bf16
activations) are decode formats too: a llama-family model under them decodes few rows on the lean step, with
the kernels and weight codes of `selflab.models.quant`'s layer wrappers, fused (int4's head stays
int8, as in `quantize_int4`), and keeps its dense forward for everything else; other architectures
keep the wrappers. Where bf16 is native (AVX512-BF16/AMX), int4 is the fastest single row of all:
measured on a 2-core Intel Xeon with AMX, the step's matmuls take 15 ms at 1 thread against 28 ms for
int8-dynamic and 52 ms for fp32; on AVX2 its bf16 activations are converted in software (29 ms).
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

from selflab.models.engine_layers import (
    DENSE,
    FP16,
    INT4,
    INT8,
    INT8_DYNAMIC,
    PIECES,
    Norm,
    Projection,
    project_as,
)
from selflab.models.lowbit import (
    int4_group_for,
    int4_group_of,
    int8_channel_scales,
    pack_int4,
    pack_int8,
)

# Quant options that exist only as decode formats (`hf:PATH?quant=...`), and the most rows each
# serves (see the module docstring). `int8` and `int4[-gN]` are decode formats too (`decode_plan`).
DECODE_FORMATS = {"fp16": 4, "int8-dynamic": 1}
# The format of `quant=none`, the model's own numbers (see the module docstring), is `DENSE`: its
# projections are of that kind.
# MKL's packed B matrix does not depend on the row count it was packed for (checked in the tests:
# packs for 16 rows give the same numbers at 2-32 rows as packs for those counts).
_PACK_ROWS = 16


def int8_dynamic_available() -> bool:
    engines = torch.backends.quantized.supported_engines
    return "fbgemm" in engines or "x86" in engines


def mkl_packing_available() -> bool:
    return bool(torch._C.has_mkl) and hasattr(torch.ops.mkl, "_mkl_linear")


def _own_bias(linear: nn.Linear) -> torch.Tensor | None:
    return linear.bias.detach() if linear.bias is not None else None


def _bias(linear: nn.Linear) -> torch.Tensor:
    if linear.bias is None:
        return linear.weight.new_zeros(linear.out_features, dtype=torch.float32)
    return linear.bias.detach().float()


class PackedLinear:
    """One projection (or several, concatenated) in a decode format: builds the `Projection` that
    `engine_layers` multiplies with (`spec`); calling it returns x's dtype. `dense` keeps the model's
    numbers: with `copies`, one fused weight (the model's own for a single projection), MKL-packed
    too when `pack` (fp32); without, the linears' own weights, unfused."""

    def __init__(self, linears: list[nn.Linear], fmt: str, copies: bool = True, pack: bool = False) -> None:
        self.fmt = fmt
        self.out_features = sum(lin.out_features for lin in linears)
        if fmt == DENSE:
            if not copies or (len(linears) == 1 and not pack):
                self.spec = self._make(
                    PIECES, [lin.weight.detach() for lin in linears], [_own_bias(lin) for lin in linears]
                )
                return
            if len(linears) == 1:  # the model's own tensors, no copy
                weight, bias = linears[0].weight.detach(), _own_bias(linears[0])
            else:
                weight = torch.cat([lin.weight.detach() for lin in linears]).contiguous()
                bias = None
                if any(lin.bias is not None for lin in linears):
                    bias = torch.cat([_bias(lin).to(weight.dtype) for lin in linears])
            mkl = torch.ops.mkl._mkl_reorder_linear_weight(weight, _PACK_ROWS) if pack else None
            self.spec = self._make(DENSE, [weight], [bias], extra=mkl)
            return
        weight = torch.cat([lin.weight.detach() for lin in linears]).float()
        bias = None
        if any(lin.bias is not None for lin in linears):  # a projection without one adds zeros
            bias = torch.cat([_bias(lin) for lin in linears])
        group = int4_group_for(weight.shape[1], int4_group_of(fmt)) if fmt.startswith("int4") else None
        if fmt.startswith("int4") and group is None:  # no group size divides the width: int8 instead
            fmt = self.fmt = "int8"
        if fmt == "fp16":
            self.spec = self._make(
                FP16, [weight.half().contiguous()], [bias.half() if bias is not None else None]
            )
        elif fmt == "int8-dynamic":
            scale = int8_channel_scales(weight)
            with warnings.catch_warnings():  # quantized tensors are deprecated; the kernel is not gone
                warnings.simplefilter("ignore")
                q = torch.quantize_per_channel(
                    weight, scale.double(), torch.zeros(len(scale), dtype=torch.long), 0, torch.qint8
                )
                packed = torch.ops.quantized.linear_prepack(q, bias)
            self.spec = self._make(INT8_DYNAMIC, [], [], packed=packed)
        elif fmt == "int8":  # as `quant.Int8Linear`: symmetric per output channel, bf16 activations
            codes, scales = pack_int8(weight)
            self.spec = self._make(INT8, [codes], [bias], extra=scales)
        elif group is not None:  # as `quant.Int4Linear`
            codes, scale_zero = pack_int4(weight, group)
            self.spec = self._make(INT4, [codes], [bias], extra=scale_zero, group=group)
        else:
            raise ValueError(f"unknown decode format '{fmt}'; use one of fp16, int8-dynamic, int8, int4-gN")

    def _make(
        self,
        kind: str,
        weights: list[torch.Tensor],
        biases: list[torch.Tensor | None],
        extra: torch.Tensor | None = None,
        packed: object = None,
        group: int = 0,
    ) -> Projection:
        return Projection(kind, weights, biases, extra, packed, group, self.out_features)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return project_as(x, self.spec)


def rms_norm_of(norm: nn.Module, exact: bool = False) -> Norm:
    """The model's rms-norm `norm` as `engine_layers.rms_norm` computes it: `exact` in transformers'
    own ops and order (6 ops, for the `dense` format, whose logits then equal the model's forward bit
    for bit), else in three (close where mean(x^2) >> eps, see `rms_norm`)."""
    weight = norm.weight.detach()
    n = weight.shape[-1]
    eps = float(getattr(norm, "variance_epsilon", getattr(norm, "eps", 1e-6)))
    return Norm(weight if exact else weight * n**0.5, eps, (n * eps) ** 0.5, exact)
