"""`score` for many prompts at once, in batched forward passes (used by `HFModel.score_batch`).

A likelihood judge scores a handful of short continuations ("Score: 1" .. "Score: 5") after each of
many long prompts. Scoring prompt by prompt runs one small pass per item for the continuations;
here every prompt's shared part runs once, in passes batched over prompts, and then all
continuations of all prompts run together on copies of their prompt's keys/values. The numbers
are those of `score` (same tokenization, same boundary rule).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch

from selflab.errors import SelflabError
from selflab.models.engine import common_prefix_len
from selflab.models.engine_cache import KVBuffer, cache_kwargs
from selflab.models.types import Message

if TYPE_CHECKING:
    from selflab.models.hf import HFModel

Prompt = str | list[Message] | tuple[Message, ...]


def _prepare(model: HFModel, prompt: Prompt, continuations: list[str]) -> tuple[list[int], list[list[int]]]:
    """(shared prefix tokens, per continuation the remaining tokens to score) for one prompt."""
    text, raw = (prompt, True) if isinstance(prompt, str) else (model.render(list(prompt)), False)
    prompt_ids = model._encode(text, raw)
    fulls = [model._encode(text + c, raw) for c in continuations]
    starts = [common_prefix_len([prompt_ids, full]) for full in fulls]
    if any(s == 0 and len(f) > 0 for s, f in zip(starts, fulls, strict=True)):
        raise SelflabError(
            "score() needs a prompt with at least one token before the continuation",
            "pass a non-empty prompt (the first token has no probability without context)",
        )
    shared = min(starts, default=len(prompt_ids))
    return prompt_ids[:shared], [f[shared:] for f in fulls]


def _batches(lengths: list[int], budget: int) -> list[list[int]]:
    out: list[list[int]] = []
    for i in sorted(range(len(lengths)), key=lengths.__getitem__):
        if out and (len(out[-1]) + 1) * lengths[i] <= budget:
            out[-1].append(i)
        else:
            out.append([i])
    return out


def _kv_bounded(batches: list[list[int]], kv_lengths: list[int], kv_budget: int) -> list[list[int]]:
    """The batches split further so that rows x longest copied prefix <= kv_budget."""
    out: list[list[int]] = []
    for batch in batches:
        current: list[int] = []
        for i in sorted(batch, key=kv_lengths.__getitem__):
            if current and (len(current) + 1) * kv_lengths[i] > kv_budget:
                out.append(current)
                current = []
            current.append(i)
        out.append(current)
    return out


def score_many(
    model: HFModel, requests: Sequence[tuple[Prompt, list[str]]], budget: int = 2048
) -> list[list[float]]:
    """Summed log-probabilities of each request's continuations after its prompt."""
    hf, device, pad = model.model, model.device, model.engine.pad_id
    num_layers = int(hf.config.get_text_config().num_hidden_layers)
    prepared = [_prepare(model, p, list(c)) for p, c in requests]
    heads: list[tuple[torch.Tensor, torch.Tensor]] = [None] * len(prepared)  # type: ignore[list-item]
    # 1. Every shared prefix once: right-padded, batched by length; keep K/V and the last logits.
    # An empty prefix (empty prompt) can only come with empty continuations (`_prepare`): nothing to
    # run, and a zero-width forward would fail.
    todo = [i for i, (p, _) in enumerate(prepared) if p]
    for sub in _batches([len(prepared[i][0]) for i in todo], budget):
        batch = [todo[k] for k in sub]
        span = max(len(prepared[i][0]) for i in batch)
        buf = KVBuffer(num_layers, len(batch), span, device)
        ids = torch.full((len(batch), span), pad, dtype=torch.long)
        keep = torch.zeros((len(batch), span), dtype=torch.bool)
        for r, i in enumerate(batch):
            prefix = prepared[i][0]
            ids[r, : len(prefix)] = torch.tensor(prefix)
            buf.valid[r, : len(prefix)] = True
            keep[r, len(prefix) - 1] = True
        causal = torch.ones(span, span, dtype=torch.bool, device=device).tril()
        mask = (causal[None] & buf.valid[:, None, :])[:, None]
        with torch.inference_mode():
            out = hf(
                input_ids=ids.to(device),
                position_ids=torch.arange(span, device=device)[None].expand(len(batch), -1),
                attention_mask=mask,
                **cache_kwargs(hf, buf.writer()),
                use_cache=True,
                logits_to_keep=keep.to(device),
            )
            last = torch.log_softmax(out.logits.reshape(len(batch), -1).float(), dim=-1).cpu()
        assert buf.data is not None
        for r, i in enumerate(batch):
            heads[i] = (buf.data[:, :, r, :, : len(prepared[i][0])].clone(), last[r])
    # 2. All continuations of all prompts: rows on copies of their prompt's K/V, batched by length.
    rows = [(i, j) for i, (_, rests) in enumerate(prepared) for j in range(len(rests)) if rests[j]]
    results = [[0.0] * len(rests) for _, rests in prepared]
    # Batches bounded by computed tokens (the rests) and by copied keys/values (prefix columns).
    lengths = [len(prepared[i][1][j]) for i, j in rows]
    kv_lengths = [len(prepared[i][0]) for i, _ in rows]
    for batch in _kv_bounded(_batches(lengths, budget), kv_lengths, budget * 8):
        p_max = max(len(prepared[rows[k][0]][0]) for k in batch)
        span = max(len(prepared[rows[k][0]][1][rows[k][1]]) for k in batch)
        buf = KVBuffer(num_layers, len(batch), p_max + span, device)
        ids = torch.full((len(batch), span), pad, dtype=torch.long)
        positions = torch.zeros((len(batch), span), dtype=torch.long)
        for r, k in enumerate(batch):
            i, j = rows[k]
            kv, _ = heads[i]
            p, rest = kv.shape[3], prepared[i][1][j]
            if buf.data is None:
                buf.allocate(kv.shape[2], kv.shape[4], kv.dtype)
            buf.data[:, :, r, :, :p] = kv
            buf.valid[r, :p] = True
            buf.valid[r, p_max : p_max + len(rest)] = True
            ids[r, : len(rest)] = torch.tensor(rest)
            positions[r] = p + torch.arange(span)
        buf.length = p_max
        cols = torch.arange(p_max + span, device=device)
        qcols = torch.arange(p_max, p_max + span, device=device)
        mask = ((cols[None, :] <= qcols[:, None])[None] & buf.valid[:, None, :])[:, None]
        with torch.inference_mode():
            out = hf(
                input_ids=ids.to(device),
                position_ids=positions.to(device),
                attention_mask=mask,
                **cache_kwargs(hf, buf.writer()),
                use_cache=True,
            )
            logp = torch.log_softmax(out.logits.float(), dim=-1).cpu()
        for r, k in enumerate(batch):
            i, j = rows[k]
            rest, first = prepared[i][1][j], heads[i][1]
            # rest[0] is predicted by the prefix's last position, rest[t] by rest position t - 1.
            results[i][j] = sum(
                float(first[rest[t]]) if t == 0 else float(logp[r, t - 1, rest[t]]) for t in range(len(rest))
            )
    return results
