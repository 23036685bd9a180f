"""A lean decode step for llama-family models: the CPU fast path for decode steps.

Why: at one row a decode step streams every weight from memory for one multiply-add each. Measured
on a 2-core AMD EPYC with AVX2 and no native bf16 (the CPU family issue #17 was filed on), the 211
matmuls of one SmolLM2-135M step take 64 ms in fp32 at 1 or 2 threads alike (memory-bound), and the
transformers forward adds ~40 ms of small operations around them (rms-norm in 7 ops, three
projections where one fused one would do, rotary in 8 ops, ...), each op costing 5-10 us of dispatch
on that machine. So a single stream decoded 9.5 tok/s, a fifth of llama.cpp's Q4_1 server.

This module keeps the model but decodes with its own step: fused projections (q|k|v and gate|up: 4
matmuls per layer instead of 7), a 3-op rms-norm (transformers' 6 ops for `dense`), rotary by `roll`,
keys/values written straight into the engine's slot cache. The projections are in a **decode format**
(`engine_formats`: `dense`, the default, with the model's own numbers; `fp16`, `int8-dynamic`, and
the weight-only `int8` / `int4[-gN]` of `quant=`). The layers themselves run compiled by TorchScript
(`engine_layers`: the same operators without Python's per-call cost); this module prepares a step's
embeddings, rotary angles and masks around them.

Everything else (prefill, more rows than `max_rows`, training, scoring) goes through the model's own
forward in its own dtype, so only decode steps differ from the dense model (like `quant=int8`
and `int4`, `selflab.models.quant`). The step itself (rms-norm, rotary, attention over the engine's
slot cache with its per-row lengths and row groups) is checked against transformers' forward with the
same weights in `tests/models/test_engine_decode.py`. The copies follow the model: when the engine
admits requests after the weights changed (`weights_version`), it calls `refresh()`, which
remakes them, or hands decoding back to the model's forward when a projection stopped being a
plain linear layer.
"""

from __future__ import annotations

import torch
from torch import nn

from selflab.models.engine_formats import (
    DECODE_FORMATS,
    DENSE,
    PackedLinear,
    mkl_packing_available,
    rms_norm_of,
)
from selflab.models.engine_layers import Layer, Projection, layers_runner
from selflab.models.engine_slots import SlotCache
from selflab.models.lowbit import INT4_MAX_ROWS, INT8_MAX_ROWS, int4_available, int4_group_of, int8_available

# Rows the `dense` format serves: with MKL-packed fp32 copies, and without (engine_formats).
DENSE_MAX_ROWS = 4
PACKED_MAX_ROWS = 32
# Copies (fused q|k|v and gate|up, MKL-packed weights) are made only up to this size (SmolLM2-135M
# fp32: 818 MB); a larger model decodes with its own weights, unfused, rather than hold them twice.
COPY_LIMIT_MB = 1024
# Architectures whose decoder layer is exactly rms-norm, rotary attention, rms-norm, gated SiLU MLP.
_LLAMA_LIKE = ("llama", "mistral")


def unsupported_reason(model: nn.Module) -> str | None:
    """Why `FastDecoder` cannot serve `model` (None when it can)."""
    config = model.config
    if getattr(config, "model_type", None) not in _LLAMA_LIKE:
        return f"model_type '{getattr(config, 'model_type', None)}' is not one of {', '.join(_LLAMA_LIKE)}"
    if getattr(config, "hidden_act", "silu") != "silu" or int(getattr(config, "pretraining_tp", 1) or 1) != 1:
        return "the MLP is not a plain gated SiLU (hidden_act != silu or pretraining_tp != 1)"
    inner = getattr(model, "model", None)
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if inner is None or not hasattr(inner, "layers") or type(head) is not nn.Linear:
        return "the model has no plain model.layers / LM head (an adapter or a quant wrapper?)"
    for layer in inner.layers:
        a, m = layer.self_attn, layer.mlp
        if any(type(p) is not nn.Linear for p in _projections(a, m)):
            return "a projection is not a plain nn.Linear (a LoRA adapter or a quant wrapper)"
    return None


def decode_plan(model: nn.Module, quant: str) -> tuple[str, int | None] | None:
    """The decode format and row limit that `quant` gives `model` on a CPU (None: the format's own,
    chosen by `FastDecoder`), or None where the lean path does not serve it (another architecture):
    the model's forward then decodes every step, through its quant wrappers if any."""
    if quant in DECODE_FORMATS:
        return quant, DECODE_FORMATS[quant]
    if unsupported_reason(model) is not None:
        return None
    dtype = next(model.parameters()).dtype
    if quant == "none":
        return DENSE, None
    if quant == "int8" and int8_available():
        return "int8", INT8_MAX_ROWS
    if quant.startswith("int4") and int4_available() and int8_available():
        return f"int4-g{int4_group_of(quant)}", INT4_MAX_ROWS.get(dtype, 16)
    return None


def decoder_for(model: nn.Module, quant: str) -> FastDecoder | None:
    """The lean decoder for `hf:PATH?quant=...` (see `decode_plan`), or None."""
    plan = decode_plan(model, quant)
    return FastDecoder(model, *plan) if plan is not None else None


def _projections(attn: nn.Module, mlp: nn.Module) -> list[nn.Module]:
    return [attn.q_proj, attn.k_proj, attn.v_proj, attn.o_proj, mlp.gate_proj, mlp.up_proj, mlp.down_proj]


def _copy_bytes(model: nn.Module, pack: bool) -> int:
    """Bytes the `dense` format's copies would take: fused q|k|v and gate|up, and with `pack` an
    MKL-packed copy of every projection and the head."""

    def size(lin: nn.Module) -> int:
        return lin.weight.numel() * lin.weight.element_size()

    fused = packed = 0
    for layer in model.model.layers:
        a, m = layer.self_attn, layer.mlp
        fused += sum(size(lin) for lin in (a.q_proj, a.k_proj, a.v_proj, m.gate_proj, m.up_proj))
        packed += sum(size(lin) for lin in _projections(a, m))
    return fused + (packed + size(model.get_output_embeddings()) if pack else 0)


def _layer(layer: nn.Module, fmt: str, copies: bool, pack: bool) -> Layer:
    a, m = layer.self_attn, layer.mlp
    exact = fmt == DENSE

    def linear(linears: list[nn.Linear]) -> Projection:
        return PackedLinear(linears, fmt, copies, pack).spec

    return Layer(
        norm1=rms_norm_of(layer.input_layernorm, exact),
        qkv=linear([a.q_proj, a.k_proj, a.v_proj]),
        o=linear([a.o_proj]),
        norm2=rms_norm_of(layer.post_attention_layernorm, exact),
        gate_up=linear([m.gate_proj, m.up_proj]),
        down=linear([m.down_proj]),
        scaling=float(a.scaling),
        intermediate=m.gate_proj.out_features,
    )


class FastDecoder:
    """Decode steps of up to `max_rows` rows for a llama-family model, with fused decode-format copies
    of its projections (see the module docstring). `step` reads and writes the engine's `SlotCache`.
    `copy_limit_mb` bounds the copies of the `dense` format; `pack` lets it use MKL-packed fp32 copies
    (where MKL is there)."""

    def __init__(
        self,
        model: nn.Module,
        fmt: str,
        max_rows: int | None = None,
        copy_limit_mb: int = COPY_LIMIT_MB,
        pack: bool = True,
        script: bool = True,
    ) -> None:
        reason = unsupported_reason(model)
        if reason is not None:
            raise ValueError(f"the fast decode path cannot serve this model: {reason}")
        config = model.config
        self.fmt = fmt
        self.model = model
        self.inner = model.model
        self.heads = int(config.num_attention_heads)
        self.kv_heads = int(getattr(config, "num_key_value_heads", None) or self.heads)
        self.head_dim = int(self.inner.layers[0].self_attn.head_dim)
        dense_fp32 = fmt == DENSE and next(model.parameters()).dtype == torch.float32
        self.pack = (
            pack
            and dense_fp32
            and mkl_packing_available()
            and _copy_bytes(model, pack=True) <= copy_limit_mb << 20
        )
        self.copies = fmt != DENSE or _copy_bytes(model, pack=False) <= copy_limit_mb << 20
        default_rows = (PACKED_MAX_ROWS if self.pack else DENSE_MAX_ROWS) if fmt == DENSE else DECODE_FORMATS.get(fmt, 1)  # fmt: skip
        self.max_rows = max_rows if max_rows is not None else default_rows
        self.run_layers = layers_runner(script)
        self.refresh()

    def refresh(self) -> bool:
        """(Re)make the copies from the model's current weights (the engine calls this when they
        changed between calls); False, and no copies, if the model can no longer be served (a
        projection wrapped by an adapter or a quant wrapper since): its forward then decodes."""
        self.layers: list[Layer] = []
        if unsupported_reason(self.model) is not None:
            return False
        with torch.no_grad():
            self.layers = [_layer(layer, self.fmt, self.copies, self.pack) for layer in self.inner.layers]
            # The head keeps 8 bits under int4, as llama.cpp's Q4 files and `quantize_int4` keep it.
            head_fmt = "int8" if self.fmt.startswith("int4") else self.fmt
            self.head = PackedLinear(
                [self.model.get_output_embeddings()], head_fmt, self.copies, self.pack
            ).spec
            self.norm = rms_norm_of(self.inner.norm, exact=self.fmt == DENSE)
        return True

    def step(
        self,
        tokens: torch.Tensor,
        positions: torch.Tensor,
        cache: SlotCache,
        groups: list[tuple[int, int, int]],
    ) -> torch.Tensor:
        """Logits (rows, vocab) of one decode step: row r's `tokens[r]` at `positions[r]` (== its
        cached length), its key/value written to that column; `groups` (row start, row end, span)
        say which columns each range of rows attends over."""
        return self.extend(tokens[:, None], positions, cache, groups)[:, 0]

    def extend(
        self,
        tokens: torch.Tensor,
        positions: torch.Tensor,
        cache: SlotCache,
        groups: list[tuple[int, int, int]],
    ) -> torch.Tensor:
        """Logits (rows, n, vocab) of `n` new tokens per row (`tokens`: (rows, n)): row r's tokens at
        positions[r] .. positions[r] + n - 1, their keys/values written to those columns, each
        attending causally over its row. n = 1 is a decode step; n > 1 checks a speculative draft
        (`engine_speculate`). A group's span must cover its rows' last new column."""
        data = cache.data
        assert data is not None
        rows, n = tokens.shape
        x = self.inner.embed_tokens(tokens.reshape(-1))  # (rows * n, hidden)
        at = positions[:, None] + torch.arange(n, device=x.device) if n > 1 else positions[:, None]
        cos, sin = self.inner.rotary_emb(x, at)  # (rows, n, dim)
        cos, sin = cos.unsqueeze(2), sin.unsqueeze(2)  # (rows, n, 1, dim): broadcast over heads
        half = self.head_dim // 2
        # rotate_half(t) * sin == roll(t, half) * [-sin_1, sin_2] (the two halves of sin are equal)
        sin = torch.cat([-sin[..., :half], sin[..., half:]], dim=-1)
        span = max(end for _, _, end in groups)
        # Query j of row r attends over columns [0, positions[r] + j]; a group of one row decoding one
        # token needs no mask (its span is its length + 1), and SDPA without a mask skips converting
        # it for every layer.
        mask = (torch.arange(span, device=x.device) <= at[:, :, None])[:, None]  # (rows, 1, n, span)
        masks = [mask[r0:r1, ..., :cols] if r1 - r0 > 1 or n > 1 else None for r0, r1, cols in groups]
        first = int(positions[0]) if rows == 1 else -1
        logits = self.run_layers(
            x, cos, sin, data, at, first, groups, masks, self.layers, self.norm, self.head,
            self.heads, self.kv_heads, self.head_dim,
        )  # fmt: skip
        return logits.view(rows, n, -1)


def weights_version(model: torch.nn.Module) -> list[tuple[int, int, int]]:
    """Which tensors the model computes with, where they live and how often they were changed in
    place: differs after training steps, `load_state_dict`, swapped tensors or added adapters."""
    tensors = [*model.parameters(), *model.buffers()]
    return [(id(t), t.data_ptr(), t._version) for t in tensors]
