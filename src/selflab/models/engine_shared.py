"""Shared prompt starts across one admission step of the batching engine, and prompts cached at
admission.

Why: the prefix cache (`engine_prefix`) only serves tokens computed in an earlier step. Requests that
arrive together and start the same way (64 fresh games with one rules text, a judge's rubric, every
seat's "You are Player 1 ..." header) would each compute that start, and prefill packs (at most
`PACK_TOKENS` new tokens) split them, so no one pack sees what they share. Here, before the prompts
are split into packs, the step's prompts are sorted; the longest common prefixes of neighbours give
every group of prompts that shares a start (`shared_groups`, the internal nodes of the prompts'
compressed trie). Each start worth it (at least `min_tokens` tokens beyond what is already cached or
computed for an enclosing group) is computed once, outer groups first, each from its enclosing
group's keys/values, and stored: in the engine's prefix cache (so later steps reuse it too), or in a
cache local to the step when the engine has none. Then every prompt looks up its longest cached
start, which is now its deepest group's, to the token.

After its prefill, each prompt's keys/values are cached at once (`cache_prompts`), not only when the
request finishes, so a request arriving while an earlier one with the same prompt start is still
decoding reuses it. At finish the prompt plus reply replaces that entry (`cache_finished`).
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass

import torch

from selflab.models.engine_jobs import EngineStats, Job
from selflab.models.engine_prefill import PrefillRow, packed_prefill, packs
from selflab.models.engine_prefix import PrefixCache, PrefixHit


@dataclass
class Group:
    """Prompts `rows` (indices into the step's prompts, at least 2) share their first `length` tokens;
    `parent` is the enclosing group (a shorter shared start of more prompts), or -1."""

    length: int
    rows: list[int]
    parent: int = -1


def shared_groups(prompts: list[list[int]]) -> list[Group]:
    """Every maximal group of prompts sharing a start, for each distinct shared length (an LCP
    interval of the sorted prompts), outer groups first. A shared start never covers a prompt's
    last token (its logits must be computed)."""
    order = sorted(range(len(prompts)), key=lambda i: prompts[i])
    # lcp[j]: what sorted prompts j-1 and j share, short of either one's last token.
    lcp = [0] * len(order)
    for j in range(1, len(order)):
        a, b = prompts[order[j - 1]], prompts[order[j]]
        lcp[j] = min(len(os.path.commonprefix([a, b])), len(a) - 1, len(b) - 1)
    found: list[tuple[int, int, int]] = []  # (length, first, last) positions in `order`
    stack: list[tuple[int, int]] = [(0, 0)]  # (length, first position) of open intervals
    for j in range(1, len(order) + 1):
        here = lcp[j] if j < len(order) else 0
        first = j - 1
        while here < stack[-1][0]:
            length, first = stack.pop()
            found.append((length, first, j - 1))
        if here > stack[-1][0]:
            stack.append((here, first))
    found.sort(key=lambda f: (f[0], f[1]))
    groups: list[Group] = []
    for length, first, last in found:
        parent = -1
        for g, (other_len, other_first, other_last) in enumerate(found[: len(groups)]):
            if other_len < length and other_first <= first and last <= other_last:
                parent = g  # the longest enclosing one comes last (sorted by length)
        groups.append(Group(length, sorted(order[first : last + 1]), parent))
    return groups


def plan_starts(
    prompts: list[list[int]], cached: list[int], min_tokens: int
) -> list[list[tuple[Group, int]]]:
    """The shared starts worth computing once, by level (a level's starts extend the previous
    level's): each a group and the tokens of its start already there (`cached[i]`: prompt i's
    cached start; or an enclosing kept group's). A start is kept when at least `min_tokens` of its
    tokens remain to compute."""
    groups = shared_groups(prompts)
    depth: list[int] = []
    levels: list[list[tuple[Group, int]]] = []
    for g in groups:
        above = g.parent
        while above >= 0 and depth[above] < 0:  # skip enclosing groups not kept
            above = groups[above].parent
        base = max([min(cached[r], g.length) for r in g.rows] + [groups[above].length if above >= 0 else 0])
        if g.length - base < min_tokens:
            depth.append(-1)
            continue
        depth.append(depth[above] + 1 if above >= 0 else 0)
        if depth[-1] == len(levels):
            levels.append([])
        levels[depth[-1]].append((g, base))
    return levels


def share_prefixes(
    model: torch.nn.Module,
    num_layers: int,
    device: torch.device,
    jobs: list[Job],
    cache: PrefixCache | None,
    lock: threading.Condition,
    min_tokens: int | None,
    stats: EngineStats,
) -> None:
    """Set every job's `hit`: its longest start already cached, after computing once each start of
    at least `min_tokens` tokens that several jobs share (see the module docstring; None: share
    nothing, only look up `cache`). `lock` guards `cache`."""
    if min_tokens is None or len(jobs) < 2:
        if cache is not None:
            with lock:
                for job in jobs:
                    job.hit = cache.lookup(job.prompt_ids)
                    job.cached_as = job.hit.entry if job.hit is not None else None
        return
    store = cache if cache is not None else PrefixCache(max_bytes=1 << 62, min_tokens=min_tokens)
    prompts = [job.prompt_ids for job in jobs]
    with lock:
        cached = [_length(store.lookup(ids, count=False)) for ids in prompts]
    for level in plan_starts(prompts, cached, max(min_tokens, store.min_tokens)):
        starts = [prompts[g.rows[0]][: g.length] for g, _ in level]
        calls, computed = _compute_starts(model, num_layers, device, starts, store, lock)
        stats.prefill_calls += calls
        stats.prefill_tokens += computed
        stats.prefix_reused_tokens += sum((len(g.rows) - 1) * (g.length - base) for g, base in level)
    with lock:
        for job in jobs:
            job.hit = store.lookup(job.prompt_ids)
            job.cached_as = job.hit.entry if job.hit is not None and cache is not None else None


def _compute_starts(
    model: torch.nn.Module,
    num_layers: int,
    device: torch.device,
    starts: list[list[int]],
    store: PrefixCache,
    lock: threading.Condition,
) -> tuple[int, int]:
    """Compute the keys/values of each token sequence in `starts` (from its longest cached start) in
    packed forward passes, and store them. Returns (forward passes, tokens computed)."""
    rows = []
    with lock:
        for ids in starts:
            hit = store.lookup(ids, limit=len(ids), count=False)
            rows.append(PrefillRow(ids[hit.length :], hit.length, hit.kv) if hit else PrefillRow(ids))
    chunks = packs([len(row.ids) for row in rows])
    for chunk in chunks:
        result = packed_prefill(model, num_layers, [rows[i] for i in chunk], device)
        with lock:
            for i, pieces in zip(chunk, result.pieces, strict=True):
                store.put(starts[i], torch.cat(pieces, dim=3))
    return len(chunks), sum(len(row.ids) for row in rows)


def cache_prompts(
    jobs: list[Job], pieces: list[list[torch.Tensor]], cache: PrefixCache | None, lock: threading.Condition
) -> None:
    """Store each job's prompt keys/values (`pieces`, from its prefill) in `cache` now, so requests
    arriving before it finishes reuse them; the entry it was served from becomes redundant."""
    if cache is None:
        return
    for job, parts in zip(jobs, pieces, strict=True):
        n = len(job.prompt_ids)
        if n < cache.min_tokens:
            continue
        # A copy (the prefill buffer is reused) with room for a short reply, which `cache_finished`
        # then writes in place instead of copying the whole row again.
        room = job.sampling.max_new_tokens if job.sampling.max_new_tokens <= n // _ROOM_SHARE else 0
        first = parts[0]
        kv = first.new_empty(first.shape[:3] + (n + room,) + first.shape[4:])
        col = 0
        for part in parts:
            kv[:, :, :, col : col + part.shape[3]] = part
            col += part.shape[3]
        with lock:
            job.cached_as = cache.put(job.prompt_ids, kv[:, :, :, :n], extends=job.cached_as)
        job.kv_room = kv if room else None


def cache_finished(kv: torch.Tensor, job: Job, cache: PrefixCache | None, lock: threading.Condition) -> None:
    """Keep a finished job's keys/values `kv` (its row in the running batch: the tokens fed so
    far, prompt then reply) in `cache`, replacing its prompt's entry."""
    if cache is None:
        return
    room, job.kv_room = job.kv_room, None
    seq = (job.prompt_ids + job.out_ids)[: kv.shape[3]]
    n, p = len(seq), len(job.prompt_ids)
    if n != kv.shape[3] or n < cache.min_tokens:
        return
    if room is not None and room.shape[3] >= n:  # the prompt is there; no cache hit covers the room
        room[:, :, :, p:n] = kv[:, :, :, p:n]
        kv = room[:, :, :, :n]
    else:
        kv = kv.clone()  # a copy: the slot is reused
    with lock:
        cache.put(seq, kv, extends=job.cached_as)


# A prompt's admission copy gets room for a reply of at most 1/_ROOM_SHARE of its length (a game
# move), so the unaccounted room stays small.
_ROOM_SHARE = 8


def _length(hit: PrefixHit | None) -> int:
    return hit.length if hit is not None else 0
