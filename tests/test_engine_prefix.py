"""The prefix cache's bookkeeping, by hand: longest-prefix lookup (to the token), eviction,
redundancy, collisions."""

from __future__ import annotations

import torch

from selflab.models.engine_prefix import PrefixCache


def kv(n: int, fill: float = 0.0) -> torch.Tensor:
    return torch.full((2, 2, 1, n, 4), fill)  # (layers, k/v, heads, tokens, dim): 64 bytes per token


def test_longest_prefix_to_the_token_and_one_token_left():
    cache = PrefixCache(block=4, min_tokens=4)
    ids = list(range(20))
    cache.put(ids, kv(20, 1.0))
    hit = cache.lookup(ids[:10] + [99, 98])  # 2 blocks, then 2 more tokens past the last block
    assert hit is not None and hit.length == 10 and hit.kv.shape[3] == 10
    exact = cache.lookup(ids)  # the whole sequence cached: one token must still be computed
    assert exact is not None and exact.length == 19
    assert cache.lookup(ids + [5], limit=7).length == 7  # at most `limit` tokens
    assert cache.lookup([5, 6, 7, 8, 9]) is None
    assert cache.lookup(ids[:3]) is None
    assert cache.hits == 3 and cache.misses == 2


def test_entry_extending_another_replaces_it_and_lru_evicts_by_bytes():
    cache = PrefixCache(max_bytes=64 * 40, block=4, min_tokens=4)
    cache.put(list(range(16)), kv(16))
    hit = cache.lookup(list(range(16)) + [1])
    cache.put(list(range(24)), kv(24), extends=hit.entry)
    assert len(cache) == 1 and cache.bytes == 64 * 24
    cache.put([7] * 12, kv(12))
    assert len(cache) == 2
    cache.lookup(list(range(24)))  # touch: [7]*12 is now the least recently used
    cache.put([9] * 12, kv(12))  # 24 + 12 + 12 tokens > 40: evict the LRU one
    assert len(cache) == 2 and cache.lookup([7] * 12 + [1]) is None
    assert cache.lookup(list(range(24))) is not None


def test_shared_prefix_survives_dropping_one_holder_and_min_tokens():
    cache = PrefixCache(block=4, min_tokens=8)
    rules = [1, 2, 3, 4, 5, 6, 7, 8]
    cache.put(rules + [10, 11, 12, 13], kv(12))
    cache.put(rules + [20, 21, 22, 23], kv(12, 2.0))
    first = cache.lookup(rules + [10, 11, 12, 13, 0])
    cache.put(rules + [10, 11, 12, 13, 14, 15, 16, 17], kv(16), extends=first.entry)
    hit = cache.lookup(rules + [30, 31])
    assert hit is not None and hit.length == 8
    assert cache.lookup([1, 2, 3, 4, 9]) is None  # 4 tokens < min_tokens


def test_hash_collision_is_caught_by_comparing_tokens(monkeypatch):
    import selflab.models.engine_prefix as ep

    monkeypatch.setattr(ep, "_block_keys", lambda ids, block, limit: [0] * (max(0, limit) // block))
    cache = PrefixCache(block=4, min_tokens=4)
    cache.put([1, 2, 3, 4, 5, 6, 7, 8], kv(8))
    assert cache.lookup([9, 9, 9, 9, 9]) is None


def test_extension_picks_the_holder_that_matches_longest():
    cache = PrefixCache(block=4, min_tokens=4)
    common = list(range(8))
    cache.put(common + [50, 51, 52], kv(11))
    longer = cache.put(common + [50, 60, 61, 62], kv(12, 2.0))
    assert isinstance(longer, int)
    hit = cache.lookup(common + [50, 51, 9, 9])  # the older entry shares 10 tokens, the newer 9
    assert hit is not None and hit.length == 10 and float(hit.kv[0, 0, 0, 0, 0]) == 0.0
    assert cache.put([1, 2], kv(2)) is None  # shorter than min_tokens: not stored
