"""Keys/values of finished requests, kept so that a later prompt starting with the same tokens skips
recomputing them (automatic prefix caching across calls).

Why: a game agent's prompt at turn k is its prompt at turn k-1 plus its reply and one new
observation; a judge sends the same rubric for every item. Without this cache each call re-runs the
whole conversation through the model, and on a CPU prefill is most of a game's cost.

Lookup is by token ids: every entry registers a chained hash of each `block`-aligned prefix, so
finding the longest cached block-aligned prefix of a prompt is one dict probe per block; the match is
then extended token by token past the last whole block (a hit rounded down to a block boundary
recomputed about half a block of every cached prompt, ~8 tokens per game move).
The tensors are exact copies of what the engine computed for those tokens at those positions, so a
hit changes nothing but floating-point summation order. Memory is bounded (least recently used
entries go first), and an entry that a newer one extends is dropped as redundant.

Only valid for the weights the keys/values came from: the engine owns one cache per model, and
`clear()` forgets them; the engine calls it when the model's weights change between calls (`weights_version`).
"""

from __future__ import annotations

import heapq
from collections import OrderedDict
from dataclasses import dataclass

import torch

# Holders of the deepest matching block compared token by token past it (the newest first).
_EXTEND_CANDIDATES = 64


@dataclass
class _Entry:
    ids: tuple[int, ...]
    kv: torch.Tensor  # (layers, 2, kv_heads, len(ids), head_dim)
    keys: list[int]  # block-prefix hashes registered for this entry


@dataclass
class PrefixHit:
    """`length` leading prompt tokens whose keys/values are `kv` (layers, 2, kv_heads, length, head_dim)."""

    length: int
    kv: torch.Tensor
    entry: int


def _block_keys(ids: list[int] | tuple[int, ...], block: int, limit: int) -> list[int]:
    """Chained hashes of ids[:block], ids[:2*block], ... up to `limit` tokens."""
    keys = []
    h = 0
    for start in range(0, limit - block + 1, block):
        h = hash((h, tuple(ids[start : start + block])))
        keys.append(h)
    return keys


class PrefixCache:
    """Bounded LRU store of (token ids -> keys/values) with longest-prefix lookup."""

    def __init__(self, max_bytes: int = 2 << 30, block: int = 16, min_tokens: int = 32) -> None:
        self.max_bytes = max_bytes
        self.block = block
        self.min_tokens = min_tokens
        self._entries: OrderedDict[int, _Entry] = OrderedDict()
        # block-prefix hash -> ids of the entries holding that prefix (several entries share a rules text)
        self._index: dict[int, set[int]] = {}
        self._next = 0
        self.bytes = 0
        self.hits = 0
        self.misses = 0
        self.hit_tokens = 0

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        self._entries.clear()
        self._index.clear()
        self.bytes = 0

    def lookup(self, ids: list[int], limit: int | None = None, count: bool = True) -> PrefixHit | None:
        """The longest cached prefix of `ids`, at most `limit` tokens (default: all but the last
        token, whose logits are needed), or None. `count`: add to the hit/miss counters."""
        limit = len(ids) - 1 if limit is None else min(limit, len(ids))
        keys = _block_keys(ids, self.block, limit)
        for i in range(len(keys) - 1, -1, -1):
            holders = self._index.get(keys[i])
            length = (i + 1) * self.block
            if not holders:
                continue
            # Every entry holding a longer match holds this block: extend among its newest holders.
            best, best_id = 0, -1
            for entry_id in heapq.nlargest(_EXTEND_CANDIDATES, holders):
                entry = self._entries[entry_id]
                # Guard against a hash collision: compare the tokens themselves.
                if tuple(ids[:length]) != entry.ids[:length]:
                    continue
                n = length
                end = min(limit, len(entry.ids))
                while n < end and ids[n] == entry.ids[n]:
                    n += 1
                if n > best:
                    best, best_id = n, entry_id
            if best < self.min_tokens:
                continue
            self._entries.move_to_end(best_id)
            if count:
                self.hits += 1
                self.hit_tokens += best
            return PrefixHit(best, self._entries[best_id].kv[:, :, :, :best], best_id)
        if count:
            self.misses += 1
        return None

    def put(self, ids: list[int], kv: torch.Tensor, extends: int | None = None) -> int | None:
        """Store `kv` (layers, 2, kv_heads, len(ids), head_dim; copied by the caller) for `ids` and
        return its entry id (None when not stored: too short or too large). `extends`: the entry
        this sequence's prompt was served from, now redundant."""
        if len(ids) < self.min_tokens:
            return None
        size = kv.numel() * kv.element_size()
        if size > self.max_bytes:
            return None
        if extends is not None and extends in self._entries:
            old = self._entries[extends]
            if tuple(ids[: len(old.ids)]) == old.ids:
                self._drop(extends)
        entry_id = self._next
        self._next += 1
        keys = _block_keys(ids, self.block, len(ids))
        self._entries[entry_id] = _Entry(tuple(ids), kv, keys)
        for key in keys:
            self._index.setdefault(key, set()).add(entry_id)
        self.bytes += size
        while self.bytes > self.max_bytes and self._entries:
            self._drop(next(iter(self._entries)))
        return entry_id if entry_id in self._entries else None

    def _drop(self, entry_id: int) -> None:
        entry = self._entries.pop(entry_id)
        self.bytes -= entry.kv.numel() * entry.kv.element_size()
        for key in entry.keys:
            holders = self._index.get(key)
            if holders is not None:
                holders.discard(entry_id)
                if not holders:
                    del self._index[key]
