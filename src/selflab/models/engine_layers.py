"""The decoder layers of the lean decode step (`engine_decode`), written once in the subset of Python
that TorchScript compiles, and run compiled.

Why: a decode step of one row is mostly small operations. Measured on a 2-core Intel Xeon with AMX,
a 4-bit draft step of SmolLM2-135M made ~1,650 operator calls from Python (~4,200 dispatcher calls),
~6-8 ms of its ~15-19 ms; the same calls from TorchScript's interpreter skip Python's argument
parsing and took ~2-3 ms less, with bit-identical logits (the same aten operators in the same order).
`torch.compile` was measured too: 48 s to compile one layer, and its steps were slower (guards).

TorchScript is deprecated for exporting models, not removed (torch 2.13); it is used here only as an
interpreter. Where scripting fails (another torch), `layers_runner` returns the plain Python function,
which computes the same thing. Records (`Norm`, `Projection`, `Layer`) are NamedTuples because
TorchScript takes them as arguments; this module keeps `typing` spellings (`Optional`, `List`) for
the same reason.
"""

import warnings
from typing import Callable, List, NamedTuple, Optional, Tuple  # noqa: UP035 - TorchScript reads these

import torch
import torch.nn.functional as F

# How a projection multiplies (`Projection.kind`; `project` compares with these strings literally, as
# TorchScript reads no module-level values): the model's own linears, unfused (F.linear each, outputs concatenated); one fused weight
# in the model's dtype, MKL-packed too when `extra` is set; half-precision weights with fp32
# accumulation; fbgemm int8 weights with activations quantised per call; weight-only int8 and int4
# (in groups), bf16 activations.
PIECES, DENSE, FP16, INT8_DYNAMIC, INT8, INT4 = "pieces", "dense", "fp16", "int8-dynamic", "int8", "int4"


class Norm(NamedTuple):
    """An rms-norm: `exact` in transformers' own ops and order, else in three (see `rms_norm`)."""

    weight: torch.Tensor  # the model's weight (exact), or weight * sqrt(n)
    eps: float
    floor: float  # sqrt(n * eps)
    exact: bool


class Projection(NamedTuple):
    """One projection, or several fused, in a decode format (built by `engine_formats.PackedLinear`)."""

    kind: str
    weights: List[torch.Tensor]  # noqa: UP006 - one weight, or the model's pieces (PIECES)
    biases: List[Optional[torch.Tensor]]  # noqa: UP006,UP045 - one per weight
    extra: Optional[torch.Tensor]  # noqa: UP045 - MKL-packed weight, int8 scales, int4 scales-and-zeros
    packed: Optional[torch.classes.quantized.LinearPackedParamsBase]  # noqa: UP045 - INT8_DYNAMIC's
    group: int  # INT4's group size
    out_features: int


class Layer(NamedTuple):
    """One decoder layer's norms and projections (q|k|v and gate|up fused)."""

    norm1: Norm
    qkv: Projection
    o: Projection
    norm2: Norm
    gate_up: Projection
    down: Projection
    scaling: float
    intermediate: int


def rms_norm(x: torch.Tensor, norm: Norm) -> torch.Tensor:
    """The model's rms-norm. Not exact: x / max(|x|, sqrt(n * eps)) * (sqrt(n) * weight), three ops
    (`F.rms_norm` costs ~3x more where each op costs ~5 us of dispatch); close where mean(x^2) >> eps
    (the residual stream; 8e-5 of SmolLM2-135M's logits after its 61 norms); the clamp only guards an
    all-zero row. Exact: as LlamaRMSNorm.forward, so the `dense` format's logits equal the model's."""
    if norm.exact:
        h = x if x.dtype == torch.float32 else x.float()
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True).add_(norm.eps))
        return norm.weight * (h if x.dtype == torch.float32 else h.to(x.dtype))
    length = torch.linalg.vector_norm(x, dim=-1, keepdim=True, dtype=torch.float32)
    return torch.div(x, length.clamp_min_(norm.floor).to(x.dtype)).mul_(norm.weight)


def project(x: torch.Tensor, p: Projection, packed_from_rows: int = 4) -> torch.Tensor:
    """x times the projection, in the kernel's own dtype (bf16 for the weight-only int8/int4 formats,
    fp16 for fp16, else x's): a caller adding it to an fp32 stream converts it exactly by type
    promotion, one op fewer. MKL-packed weights serve from `packed_from_rows` rows: below, the packed
    kernel is no faster (measured) and plain `F.linear` keeps the model's numbers bit for bit."""
    if p.kind == "pieces":
        outs = [F.linear(x, p.weights[i], p.biases[i]) for i in range(len(p.weights))]
        return outs[0] if len(outs) == 1 else torch.cat(outs, dim=-1)
    if p.kind == "dense":
        extra = p.extra
        if extra is not None and x.shape[0] >= packed_from_rows:  # x's own row count: packed, always
            return torch.ops.mkl._mkl_linear(x, extra, p.weights[0], p.biases[0], x.shape[0])
        return F.linear(x, p.weights[0], p.biases[0])
    if p.kind == "fp16":
        return F.linear(x.half(), p.weights[0], p.biases[0])
    if p.kind == "int8-dynamic":
        packed = p.packed
        assert packed is not None
        return torch.ops.quantized.linear_dynamic(x if x.dtype == torch.float32 else x.float(), packed, True)
    extra = p.extra
    assert extra is not None
    flat = x.to(torch.bfloat16)
    if p.kind == "int8":
        out = torch.ops.aten._weight_int8pack_mm(flat, p.weights[0], extra)
    else:
        out = torch.ops.aten._weight_int4pack_mm_for_cpu(flat, p.weights[0], p.group, extra)
        if out.shape[1] != p.out_features:  # the int4 kernel pads its outputs to a multiple of 16
            out = out[:, : p.out_features]
    bias = p.biases[0]
    if bias is not None:
        out = out + bias.to(out.dtype)
    return out


def project_as(x: torch.Tensor, p: Projection) -> torch.Tensor:
    """`project`, converted to x's dtype (a no-op `to` still costs dispatch)."""
    out = project(x, p)
    return out if out.dtype == x.dtype else out.to(x.dtype)


def run_layers(
    x: torch.Tensor,
    cos: torch.Tensor,
    sin: torch.Tensor,
    data: torch.Tensor,
    at: torch.Tensor,
    first: int,
    groups: List[Tuple[int, int, int]],  # noqa: UP006
    masks: List[Optional[torch.Tensor]],  # noqa: UP006,UP045
    layers: List[Layer],  # noqa: UP006
    final: Norm,
    head: Projection,
    heads: int,
    kv: int,
    dim: int,
) -> torch.Tensor:
    """Logits (rows * n, vocab) of `x` (rows * n, hidden), `n` new tokens per row at columns `at`
    (rows, n) of the slot cache `data`; `first` >= 0: one row, whose columns start there (written as a
    slice: an index_put costs ~3x its dispatch); `cos`/`sin` (rows, n, 1, dim) with sin's first half
    negated (rotate_half(t) * sin == roll(t, half) * [-sin_1, sin_2]); `groups` (row start, row end,
    columns) with their masks (None: attend to every column given)."""
    rows, n = at.shape
    half = dim // 2
    row_ids = torch.arange(rows, device=x.device)[:, None]
    # Added to an fp32 residual stream, a product in its kernel's dtype is converted exactly by type
    # promotion, one op fewer each; gate|up's stays in x's dtype (SiLU in bf16 moved the 4-bit step's
    # logits 3.6% from quant=int4's, 2% allowed). In a bf16 stream an fp16 product would promote it
    # to fp32: products are converted there.
    promotes = x.dtype == torch.float32
    for i, layer in enumerate(layers):
        qkv = project_as(rms_norm(x, layer.norm1), layer.qkv).view(rows, n, heads + 2 * kv, dim)
        qk = qkv[:, :, : heads + kv]
        qk = qk * cos + qk.roll(half, -1) * sin
        keys, values = data[i, 0], data[i, 1]
        if first >= 0:
            keys[0, :, first : first + n] = qk[0, :, heads:].transpose(0, 1)
            values[0, :, first : first + n] = qkv[0, :, heads + kv :].transpose(0, 1)
        else:
            keys[row_ids, :, at] = qk[:, :, heads:]
            values[row_ids, :, at] = qkv[:, :, heads + kv :]
        q = qk[:, :, :heads].transpose(1, 2)  # (rows, heads, n, dim)
        parts: List[torch.Tensor] = []  # noqa: UP006
        for g in range(len(groups)):
            r0, r1, cols = groups[g]
            parts.append(
                F.scaled_dot_product_attention(
                    q[r0:r1],
                    keys[r0:r1, :, :cols],
                    values[r0:r1, :, :cols],
                    attn_mask=masks[g],
                    scale=layer.scaling,
                    enable_gqa=heads != kv,
                )
            )
        attn = parts[0] if len(parts) == 1 else torch.cat(parts)
        mixed = attn.transpose(1, 2).reshape(rows * n, heads * dim)
        x = x + (project(mixed, layer.o) if promotes else project_as(mixed, layer.o))
        gate_up = project_as(rms_norm(x, layer.norm2), layer.gate_up)
        hidden = F.silu(gate_up[:, : layer.intermediate]) * gate_up[:, layer.intermediate :]
        x = x + (project(hidden, layer.down) if promotes else project_as(hidden, layer.down))
    return project_as(rms_norm(x, final), head)


_RUNNER: Optional[Callable[..., torch.Tensor]] = None  # noqa: UP045


def layers_runner(script: bool = True) -> Callable[..., torch.Tensor]:
    """`run_layers`, compiled by TorchScript once per process (plain Python with `script=False`, or
    where scripting fails: the same operators, so the same numbers, with more dispatch). It runs
    under TorchScript's simple executor: the profiling one specialises the graph to the shapes it
    saw, and every decode step brings new ones (the cache grows); measured, it only added warm-up."""
    global _RUNNER
    if not script:
        return run_layers
    if _RUNNER is None:
        try:
            with warnings.catch_warnings():  # "torch.jit.script is deprecated": see the module docstring
                warnings.simplefilter("ignore")
                compiled = torch.jit.script(run_layers)
        except Exception as error:  # noqa: BLE001 - any compiler failure: run the Python function
            warnings.warn(
                f"TorchScript could not compile the decode step ({error}); it runs in Python", stacklevel=2
            )
            _RUNNER = run_layers
        else:
            _RUNNER = SimplyExecuted(compiled)
    return _RUNNER


class SimplyExecuted:
    """A TorchScript function called under the simple executor (see `layers_runner`)."""

    def __init__(self, compiled: Callable[..., torch.Tensor]) -> None:
        self.compiled = compiled

    def __call__(self, *args: object) -> torch.Tensor:
        with torch.jit.optimized_execution(False):
            return self.compiled(*args)
