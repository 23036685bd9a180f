"""Decode attention in groups of rows of similar length, so short rows stop reading long padding.

Why: in a decode step every row attends over the columns of the longest row (one padded tensor), and
on a CPU that read is memory-bound: at 64 rows the embedded model's attention was about a fifth of a
decode step, growing with the longest row. When rows differ in length (a new short prompt beside a
long-running answer), most of that read is padding. Here the running batch is split into a few
contiguous row ranges (rows are kept roughly longest-first, see `engine.py`), and each range attends
only over its own longest row: the same `scaled_dot_product_attention`, on shorter views.

The same function serves packed prefill (`engine_prefill`): several prompts in one sequence, each
after its own cached start. One masked attention over the whole pack would score every query
against every prompt's start (4 prompts after 330-token starts: 1,560 columns instead of 390 each);
with `selflab_segments` each prompt attends only over its own start and tokens. Measured on the
embedded model (fp32, 1 thread, packs of 4 prompts of 60 new tokens after distinct 330-token
starts): 4.6 ms per token as one attention, 4.1 with each prompt in its own forward pass.

It plugs into transformers through its documented `AttentionInterface`: the model is switched to
the registered function, which behaves exactly like "sdpa" unless the engine passes `selflab_groups`
with a decode step (prefill, `score`, `generate` and training calls never do).
"""

from __future__ import annotations

from itertools import accumulate

import torch
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

NAME = "selflab_grouped_sdpa"
# A group must save at least this many (row x column) reads: each group costs one more attention
# call per layer (~0.5-1 ms per step for the embedded model), a row-column ~7 us per step in fp32.
MIN_SAVING = 128
MIN_ROWS = 2


def grouped_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    selflab_groups: list[tuple[int, int, int]] | None = None,
    **kwargs,
) -> tuple[torch.Tensor, None]:
    """transformers' SDPA attention, per group (row start, row end, span) when given one query, or
    per packed prompt (`selflab_segments`, see `packed_segments`)."""
    segments = kwargs.pop("selflab_segments", None)
    if segments and attention_mask is not None and query.shape[0] == 1:
        parts = []
        for q0, q1, cols in segments:
            out, _ = sdpa_attention_forward(
                module,
                query[:, :, q0:q1],
                key.index_select(2, cols),
                value.index_select(2, cols),
                attention_mask[:, :, q0:q1].index_select(-1, cols),
                **kwargs,
            )
            parts.append(out)
        return torch.cat(parts, dim=1), None
    if not selflab_groups or query.shape[2] != 1 or attention_mask is None:
        return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)
    outs = []
    for r0, r1, span in selflab_groups:
        out, _ = sdpa_attention_forward(
            module,
            query[r0:r1],
            key[r0:r1, :, :span],
            value[r0:r1, :, :span],
            attention_mask[r0:r1, ..., :span],
            **kwargs,
        )
        outs.append(out)
    return torch.cat(outs, dim=0), None


def use_grouped_attention(model: torch.nn.Module) -> bool:
    """Switch a model that uses "sdpa" to the grouped function (same results without groups).
    Returns whether it is on (other attention implementations are left alone)."""
    config = model.config
    if getattr(config, "_attn_implementation", None) == NAME:
        return True
    if getattr(config, "_attn_implementation", None) != "sdpa" or not hasattr(
        model, "set_attn_implementation"
    ):
        return False
    AttentionInterface.register(NAME, grouped_attention)
    AttentionMaskInterface.register(NAME, sdpa_mask)
    model.set_attn_implementation(NAME)
    return True


def plan_groups(lengths: list[int], max_groups: int = 4) -> list[tuple[int, int, int]]:
    """Contiguous row ranges (start, end, span) for a decode step whose rows hold `lengths` tokens
    (each attends over its tokens plus the new one): split where it saves the most reads, while a
    split saves at least `MIN_SAVING` row-columns."""
    groups = [(0, len(lengths))]
    while len(groups) < max_groups:
        best = (MIN_SAVING, -1, -1)
        for g, (a, b) in enumerate(groups):
            seg = lengths[a:b]
            if len(seg) < 2 * MIN_ROWS:
                continue
            whole = len(seg) * max(seg)
            head = list(accumulate(seg, max))
            tail = list(accumulate(reversed(seg), max))[::-1]
            for k in range(MIN_ROWS, len(seg) - MIN_ROWS + 1):
                saving = whole - k * head[k - 1] - (len(seg) - k) * tail[k]
                if saving > best[0]:
                    best = (saving, g, a + k)
        if best[1] < 0:
            break
        _, g, cut = best
        a, b = groups[g]
        groups[g : g + 1] = [(a, cut), (cut, b)]
    return [(a, b, max(lengths[a:b]) + 1) for a, b in groups]
