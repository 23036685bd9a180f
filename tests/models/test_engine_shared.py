"""Shared prompt starts across one admission step, and prompts cached at admission (`engine_shared`),
against transformers' own greedy `generate` on a tiny random llama.

The prompts look like a batch of fresh self-play games: a long common "rules" start, two seat
headers, and a distinct tail each. Every prompt is over 256 tokens, so each one is a prefill pack of
its own: what they share can only be found across packs.
"""

from __future__ import annotations

import random
import threading
from pathlib import Path

import pytest
import torch

from selflab.models.engine_shared import shared_groups
from selflab.models.hf import HFModel
from selflab.models.testing import lively_tiny_llama
from selflab.models.types import SamplingParams

rng = random.Random(5)
RULES = [rng.randrange(10, 200) for _ in range(300)]
HEADERS = [[201 + h] + [rng.randrange(10, 200) for _ in range(39)] for h in range(2)]
TAILS = [[220 + i] + [rng.randrange(10, 200) for _ in range(9 + 3 * i)] for i in range(8)]
PROMPTS = [RULES + HEADERS[i % 2] + TAILS[i] for i in range(8)]
NEW = 8


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return lively_tiny_llama(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="module")
def reference(folder) -> list[list[int]]:
    """Greedy continuations from transformers `generate`, one prompt at a time."""
    model = HFModel(folder, device="cpu", threads=1, prefix_cache_mb=0, prefix_reuse=False)
    try:
        out = []
        with torch.inference_mode():
            for prompt in PROMPTS:
                seq = model.model.generate(
                    torch.tensor([prompt]),
                    attention_mask=torch.ones(1, len(prompt), dtype=torch.long),
                    do_sample=False,
                    max_new_tokens=NEW,
                    pad_token_id=model.engine.pad_id,
                )[0, len(prompt) :].tolist()
                eos = [i for i, t in enumerate(seq) if t in model.engine.eos_ids]
                out.append(seq[: eos[0]] if eos else seq)
        return out
    finally:
        model.close()


def greedy(n: int = NEW) -> SamplingParams:
    return SamplingParams(max_new_tokens=n, logprobs=True)  # logprobs: the completion lists its tokens


def ids(model: HFModel, future) -> list[int]:
    got = future.result(timeout=120)
    assert got.error is None
    return model.tokenizer.convert_tokens_to_ids(got.tokens)


def run(model: HFModel, prompts: list[list[int]]) -> list[list[int]]:
    futures = [model.engine.submit(p, greedy()) for p in prompts]
    return [ids(model, f) for f in futures]


def test_shared_groups_are_the_nested_shared_starts():
    common = list(range(100, 140))
    prompts = [common + [1, 2, 3, 4, 5], common + [1, 2, 3, 9], common + [7, 7], [5, 5, 5], common + [1, 2, 3, 4, 6], [5, 5, 5]]  # fmt: skip
    got = [(g.length, g.rows, g.parent) for g in shared_groups(prompts)]
    # Identical prompts share all but their last token; groups come outer first.
    assert got == [(2, [3, 5], -1), (40, [0, 1, 2, 4], -1), (43, [0, 1, 4], 1), (44, [0, 4], 2)]
    assert shared_groups([[1, 2, 3]]) == [] and shared_groups([[1, 2], [3, 4]]) == []


@pytest.mark.parametrize("cache_mb", [2048, 0])
def test_shared_starts_across_packs_are_computed_once(folder, reference, cache_mb):
    model = HFModel(folder, device="cpu", threads=1, prefix_cache_mb=cache_mb)
    try:
        stats = model.engine.stats
        got = run(model, PROMPTS)
        assert got == reference
        # The rules once, each header once, then only the tails.
        assert stats.prefill_tokens == len(RULES) + 2 * 40 + sum(len(t) for t in TAILS)
        assert stats.prefix_reused_tokens == 7 * len(RULES) + 2 * 3 * 40
        model.engine.prefix_reuse = False
        model.engine.clear_prefix_cache()
        before = stats.prefill_tokens
        assert run(model, PROMPTS) == reference
        assert stats.prefill_tokens - before == sum(len(p) for p in PROMPTS)  # nothing shared
    finally:
        model.close()


def test_prompt_cached_at_admission_serves_a_request_arriving_while_it_decodes(folder, reference):
    model = HFModel(folder, device="cpu", threads=1)
    later: list = []

    def on_tokens(ids: list[int]) -> None:  # runs on the engine thread, while the first one decodes
        if not later:
            later.append(model.engine.submit(PROMPTS[2], greedy()))

    try:
        stats = model.engine.stats
        first = model.engine.submit(PROMPTS[0], greedy(), on_tokens=on_tokens)
        assert ids(model, first) == reference[0]
        assert later and ids(model, later[0]) == reference[2]
        # The second prompt read rules and header from the first one's entry, to the token.
        assert stats.prefix_cached_tokens == len(RULES) + 40
        assert stats.prefill_tokens == len(PROMPTS[0]) + len(TAILS[2])
        assert len(model.engine.prefix_cache) == 2  # each prompt's entry was replaced by prompt + reply
        # The reply was written into the room left after the admission copy: a continuation reads
        # prompt and reply (all but the last token, never fed) from it.
        follow = PROMPTS[0] + reference[0] + [7, 8]
        before = stats.prefix_cached_tokens
        got = ids(model, model.engine.submit(follow, greedy(4)))
        assert stats.prefix_cached_tokens - before == len(PROMPTS[0]) + len(reference[0]) - 1
        with torch.inference_mode():
            ref = model.model.generate(torch.tensor([follow]), do_sample=False, max_new_tokens=4,
                                       attention_mask=torch.ones(1, len(follow), dtype=torch.long),
                                       pad_token_id=model.engine.pad_id)[0, len(follow):].tolist()  # fmt: skip
        eos = [i for i, t in enumerate(ref) if t in model.engine.eos_ids]
        assert got == (ref[: eos[0]] if eos else ref)
    finally:
        model.close()


@pytest.mark.parametrize("tokens", [100, 400, 100_000])
def test_outputs_unchanged_when_shared_starts_are_evicted(folder, reference, tokens):
    model = HFModel(folder, device="cpu", threads=1)
    try:
        run(model, [PROMPTS[0][:40]])  # one small entry: its size gives the bytes per token
        cache = model.engine.prefix_cache
        per_token = cache.bytes // len(next(iter(cache._entries.values())).ids)
        cache.clear()
        cache.max_bytes = tokens * per_token  # 100: no start fits; 400: each evicts the previous one
        assert run(model, PROMPTS) == reference
        assert cache.bytes <= cache.max_bytes
    finally:
        model.close()


def test_cancelled_and_finished_at_admission_in_the_same_step(folder, reference):
    model = HFModel(folder, device="cpu", threads=1)
    engine = model.engine
    try:
        with engine._cond:  # the worker cannot take any of them before all are queued
            futures = [engine.submit(p, greedy(1 if i == 1 else NEW)) for i, p in enumerate(PROMPTS[:4])]
            assert futures[3].cancel()
        assert futures[3].cancelled()
        assert ids(model, futures[0]) == reference[0]
        assert ids(model, futures[1]) == reference[1][:1]
        assert ids(model, futures[2]) == reference[2]
        # The one that finished at its first token was cached at admission: its prompt is reused.
        before = engine.stats.prefix_cached_tokens
        follow = engine.submit(PROMPTS[1] + reference[1][:1] + [7], greedy(2))
        assert follow.result(timeout=120).error is None
        assert engine.stats.prefix_cached_tokens - before >= len(PROMPTS[1])
    finally:
        model.close()


def test_concurrent_submitters_get_their_own_greedy_outputs(folder, reference):
    model = HFModel(folder, device="cpu", threads=1, max_batch_size=3)  # several admission steps
    results: list = [None] * len(PROMPTS)

    def call(i: int) -> None:
        results[i] = ids(model, model.engine.submit(PROMPTS[i], greedy()))

    try:
        threads = [threading.Thread(target=call, args=(i,)) for i in range(len(PROMPTS))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert results == reference
    finally:
        model.close()


def test_packed_prompts_attend_only_over_their_own_starts(folder, monkeypatch):
    """Per-prompt attention segments in a packed prefill give the one-attention results."""
    import selflab.models.engine_prefill as ep

    model = HFModel(folder, device="cpu", threads=1)
    try:
        engine = model.engine
        starts = [ep.packed_prefill(engine.model, engine.num_layers, [ep.PrefillRow(p[:300])], engine.device) for p in PROMPTS[:2]]  # fmt: skip
        kv = [torch.cat(s.pieces[0], dim=3) for s in starts]
        rows = [ep.PrefillRow(PROMPTS[i][300:], 300, kv[i % 2]) for i in range(4)] + [ep.PrefillRow(TAILS[5])]

        def prefill():
            with torch.inference_mode():
                out = ep.packed_prefill(engine.model, engine.num_layers, rows, engine.device)
            return out.logits.clone(), [torch.cat(p, dim=3).clone() for p in out.pieces]

        assert engine.model.config._attn_implementation == ep.GROUPED  # segments are on
        seg_logits, seg_kv = prefill()
        monkeypatch.setattr(ep, "GROUPED", "off")  # one masked attention over the whole pack
        ref_logits, ref_kv = prefill()
        assert torch.allclose(seg_logits, ref_logits, atol=1e-4)
        for a, b in zip(seg_kv, ref_kv, strict=True):
            assert torch.allclose(a, b, atol=1e-4)
    finally:
        model.close()


def test_packs_shortest_first_within_the_limit() -> None:
    from selflab.models.engine_prefill import packs

    assert packs([300, 10, 20, 250, 5], 256) == [[4, 1, 2], [3], [0]]  # 300 > 256: a pack of its own
    assert packs([], 256) == []
