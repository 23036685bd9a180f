"""Prefill for the batching engine: many prompts in one forward pass, packed without padding.

Why packed: prompts of a chunk differ in length. Padding every row to the longest one made the
benchmark's prefill compute 3,700 token positions for 1,900 real tokens (64 chat prompts, measured
on the embedded model), and prefill was a quarter of the whole run's CPU time. Here all new tokens
of a chunk form one sequence (batch 1); a block-diagonal causal mask keeps each prompt to its own
tokens, position ids restart per prompt, and only each prompt's last position goes through the LM
head. The matmuls then see exactly the real tokens. The attention over a packed sequence computes
(tokens x tokens) scores of which the mask keeps only each prompt's own block, so packs are kept
short (`PACK_TOKENS`): measured on the embedded model (fp32, 1 thread, 22 chat prompts, 1,020
tokens, two rounds), 2.94-3.21 ms per token in packs of <= 256 tokens, 2.99-3.23 in <= 512,
3.67-3.71 in one pack of 1,020.

A prompt may start from keys/values it already has (a prefix-cache hit, or a start it shares with
other prompts of the step, computed once by `engine_shared`): those sit in columns before the packed tokens, each
distinct one once, and a prompt's tokens attend to its own start columns.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from selflab.models.engine_attention import NAME as GROUPED
from selflab.models.engine_cache import KVBuffer, cache_kwargs

# New tokens per packed forward pass (a longer prompt is packed alone). See the module docstring.
PACK_TOKENS = 256


@dataclass
class PrefillRow:
    """One prompt of a packed prefill: `ids` still to compute, after `start` tokens whose keys/values
    are `start_kv` (layers, 2, kv_heads, start, head_dim), or none."""

    ids: list[int]
    start: int = 0
    start_kv: torch.Tensor | None = None


@dataclass
class PrefillResult:
    """Logits of each prompt's last position (rows, vocab) and each prompt's keys/values as pieces
    to place one after the other (start keys/values, then the new tokens')."""

    logits: torch.Tensor
    pieces: list[list[torch.Tensor]]


def _same_start(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.data_ptr() == b.data_ptr() and a.shape == b.shape and a.stride() == b.stride()


def packed_prefill(
    model: torch.nn.Module, num_layers: int, rows: list[PrefillRow], device: torch.device
) -> PrefillResult:
    """Run the new tokens of all `rows` in one forward pass (see the module docstring)."""
    # Distinct start blocks, each placed once: (kv, first column).
    starts: list[tuple[torch.Tensor, int]] = []
    owner: list[int] = []  # rows' start block index, -1 for none
    width = 0
    for row in rows:
        if row.start_kv is None or row.start == 0:
            owner.append(-1)
            continue
        kv = row.start_kv
        found = next((u for u, (other, _) in enumerate(starts) if _same_start(kv, other)), None)
        if found is None:
            starts.append((kv, width))
            found = len(starts) - 1
            width += kv.shape[3]
        owner.append(found)
    lengths = [len(row.ids) for row in rows]
    total = sum(lengths)
    buf = KVBuffer(num_layers, 1, width + total, device)
    for kv, col in starts:
        if buf.data is None:
            buf.allocate(kv.shape[2], kv.shape[4], kv.dtype)
        assert buf.data is not None
        buf.data[:, :, 0, :, col : col + kv.shape[3]] = kv
    buf.length = width

    offsets = [0]
    for n in lengths:
        offsets.append(offsets[-1] + n)
    token_row = torch.repeat_interleave(torch.arange(len(rows)), torch.tensor(lengths))
    first = torch.tensor(offsets[:-1])[token_row]
    index = torch.arange(total)
    row_start = torch.tensor([row.start for row in rows])
    positions = row_start[token_row] + (index - first)
    # New columns: same prompt, not after the query token.
    new_part = (token_row[:, None] == token_row[None, :]) & (index[None, :] <= index[:, None])
    mask = new_part
    if width:
        column_block = torch.empty(width, dtype=torch.long)
        column_offset = torch.empty(width, dtype=torch.long)
        for u, (kv, col) in enumerate(starts):
            n = kv.shape[3]
            column_block[col : col + n] = u
            column_offset[col : col + n] = torch.arange(n)
        token_block = torch.tensor(owner)[token_row]
        token_start = row_start[token_row]
        start_part = (column_block[None, :] == token_block[:, None]) & (
            column_offset[None, :] < token_start[:, None]
        )
        mask = torch.cat([start_part, new_part], dim=1)
    input_ids = torch.tensor([[t for row in rows for t in row.ids]], dtype=torch.long, device=device)
    last = torch.tensor([o - 1 for o in offsets[1:]], device=device)
    extra = {}
    if width and len(rows) > 1 and getattr(model.config, "_attn_implementation", None) == GROUPED:
        # Each prompt attends over its own start and tokens only (`engine_attention`).
        segments = []
        for r, row in enumerate(rows):
            own = torch.arange(width + offsets[r], width + offsets[r + 1])
            if owner[r] >= 0:
                col = starts[owner[r]][1]
                own = torch.cat([torch.arange(col, col + row.start), own])
            segments.append((offsets[r], offsets[r + 1], own.to(device)))
        extra["selflab_segments"] = segments
    out = model(
        input_ids=input_ids,
        position_ids=positions.unsqueeze(0).to(device),
        attention_mask=mask[None, None].to(device),
        **cache_kwargs(model, buf.writer()),
        use_cache=True,
        logits_to_keep=last,
        **extra,
    )
    assert buf.data is not None
    pieces = []
    for r, row in enumerate(rows):
        parts = []
        if owner[r] >= 0:
            _, col = starts[owner[r]]
            parts.append(buf.data[:, :, 0, :, col : col + row.start])
        parts.append(buf.data[:, :, 0, :, width + offsets[r] : width + offsets[r + 1]])
        pieces.append(parts)
    return PrefillResult(logits=out.logits[0], pieces=pieces)


def common_prefix_len(seqs: list[list[int]]) -> int:
    """Length of the longest token prefix shared by all sequences."""
    return len(os.path.commonprefix(seqs)) if seqs else 0


def packs(sizes: list[int], limit: int = PACK_TOKENS) -> list[list[int]]:
    """Indices of `sizes` (new tokens per prompt), shortest first, in packs of at most `limit`
    tokens for one packed prefill; a longer prompt is a pack of its own."""
    out: list[list[int]] = []
    size = 0
    for i in sorted(range(len(sizes)), key=lambda i: sizes[i]):
        if out and size + sizes[i] <= limit:
            out[-1].append(i)
            size += sizes[i]
        else:
            out.append([i])
            size = sizes[i]
    return out
