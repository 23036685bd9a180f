"""The engine's running-batch cache (`engine_slots`) and packed prefill (`engine_prefill`): rows
keep their own keys/values through removals and growth, and a packed prefill computes for each
prompt what the model computes for that prompt alone."""

from __future__ import annotations

import pytest
import torch

from selflab.models.engine_cache import KVBuffer, cache_kwargs
from selflab.models.engine_prefill import PrefillRow, packed_prefill
from selflab.models.engine_slots import SlotCache
from selflab.models.hf import HFModel
from selflab.models.testing import lively_tiny_llama
from selflab.models.types import GenerationRequest, SamplingParams


def _row(length: int, tag: float) -> torch.Tensor:
    """(layers=2, 2, kv_heads=1, length, head_dim=3) filled with recognisable values."""
    base = torch.arange(length, dtype=torch.float32)[None, None, None, :, None]
    return (base + tag).expand(2, 2, 1, length, 3).clone()


def test_slot_cache_keeps_each_row_through_removal_and_growth() -> None:
    cache = SlotCache(num_layers=2, device=torch.device("cpu"))
    rows = {tag: _row(n, tag * 1000) for tag, n in [(1, 5), (2, 3), (3, 7), (4, 2)]}
    cache.add([[rows[1]], [rows[2][:, :, :, :1], rows[2][:, :, :, 1:]], [rows[3]], [rows[4]]], max_rows=8)
    assert cache.lengths == [5, 3, 7, 2]
    assert torch.equal(cache.row(1), rows[2])  # pieces land one after the other
    order = cache.remove([0, 2])  # holes at 0 and 2; the last row moves into slot 0
    assert order == [3, 1]
    assert cache.lengths == [2, 3]
    assert torch.equal(cache.row(0), rows[4]) and torch.equal(cache.row(1), rows[2])
    # Grow past the reserved columns and slots: the rows survive the reallocation.
    big = _row(300, 5000)
    cache.add([[big]] * 5, max_rows=8)
    assert cache.reallocations >= 2 and cache.data is not None and cache.data.shape[4] > 300
    assert torch.equal(cache.row(0), rows[4]) and torch.equal(cache.row(6), big)
    assert cache.remove(list(range(7))) == [] and cache.rows == 0


@pytest.fixture(scope="module")
def lm(tmp_path_factory):
    model = HFModel(lively_tiny_llama(tmp_path_factory.mktemp("tiny")), device="cpu", max_batch_size=4)
    yield model
    model.close()


def _alone(lm: HFModel, ids: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Last-position logits and keys/values (layers, 2, kv_heads, len, head_dim) of one prompt."""
    layers = lm.model.config.num_hidden_layers
    buf = KVBuffer(layers, 1, len(ids), lm.device)
    with torch.inference_mode():
        out = lm.model(
            input_ids=torch.tensor([ids]),
            position_ids=torch.arange(len(ids))[None],
            **cache_kwargs(lm.model, buf.writer()),
            use_cache=True,
            logits_to_keep=1,
        )
    assert buf.data is not None
    return out.logits[0, -1], buf.data[:, :, 0, :, : len(ids)]


def test_packed_prefill_equals_each_prompt_alone(lm) -> None:
    texts = ["The cat sat on the mat and", "1 2 3", "Once upon a time, in a land far away, a dragon"]
    prompts = [lm.tokenizer(t)["input_ids"] for t in texts]
    # Row 3 starts from the keys/values of its first 4 tokens (as a prefix-cache hit would), and
    # rows 4 and 5 share one start block (as a prefix computed once for a chunk would).
    shared = prompts[2][:5]
    _, shared_kv = _alone(lm, shared)
    _, head_kv = _alone(lm, prompts[0][:4])
    rows = [PrefillRow(p) for p in prompts]
    rows.append(PrefillRow(prompts[0][4:], 4, head_kv))
    rows += [PrefillRow(prompts[2][5:], 5, shared_kv), PrefillRow([17, 42, 7], 5, shared_kv)]
    full = [*prompts, prompts[0], prompts[2], shared + [17, 42, 7]]
    layers = lm.model.config.num_hidden_layers
    with torch.inference_mode():
        got = packed_prefill(lm.model, layers, rows, lm.device)
    assert got.logits.shape[0] == len(rows)
    for r, ids in enumerate(full):
        logits, kv = _alone(lm, ids)
        assert torch.allclose(got.logits[r], logits, atol=1e-4), r
        assert torch.allclose(torch.cat(got.pieces[r], dim=3), kv, atol=1e-4), r


def test_rows_leaving_and_joining_every_step_decode_like_generate(lm) -> None:
    """Eleven greedy requests through a 4-row batch, each with its own length: rows finish and new
    ones join at many steps (slot moves, packed prefills of late arrivals), and every text is the
    one transformers' `generate` gives for the prompt alone."""
    words = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda".split()
    requests = [
        GenerationRequest(
            prompt=" ".join(words[: i + 1]), sampling=SamplingParams(max_new_tokens=3 + (i * 5) % 11)
        )
        for i in range(11)
    ]
    got = lm.generate(requests)
    for req, g in zip(requests, got, strict=True):
        ids = lm.prompt_ids(req)
        with torch.inference_mode():
            out = lm.model.generate(
                torch.tensor([ids]),
                attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                do_sample=False,
                max_new_tokens=req.sampling.max_new_tokens,
                pad_token_id=lm.engine.pad_id,
            )
        new = out[0, len(ids) :].tolist()
        cut = next((i for i, t in enumerate(new) if t in lm.engine.eos_ids), len(new))
        assert g.text == lm.tokenizer.decode(new[:cut], skip_special_tokens=True)
    assert lm.engine.stats.decode_row_steps > 0


def test_plan_groups_splits_only_where_it_saves_reads() -> None:
    from selflab.models.engine_attention import MIN_SAVING, plan_groups

    assert plan_groups([50] * 8) == [(0, 8, 51)]  # equal rows: nothing to save
    assert plan_groups([400, 390, 380, 20, 10, 12]) == [(0, 3, 401), (3, 6, 21)]
    few = [10 + MIN_SAVING // 4, 10, 10, 10]  # saving below MIN_SAVING: one group
    assert plan_groups(few) == [(0, 4, max(few) + 1)]
    groups = plan_groups([900, 800, 700, 600, 500, 400, 300, 200, 100, 50], max_groups=3)
    assert len(groups) == 3 and groups[0][0] == 0 and groups[-1][1] == 10


def test_grouped_attention_decodes_like_one_padded_group(tmp_path) -> None:
    """Rows of very different lengths decode the same tokens and log-probs with attention in
    groups as with one padded group, and the groups really cut the columns read."""
    folder = lively_tiny_llama(tmp_path)
    long = "word " * 150
    requests = [
        GenerationRequest(prompt=p, sampling=SamplingParams(max_new_tokens=12, logprobs=True))
        for p in [long + "end", long + "stop here", "hi", "a b", "The cat", "1 2 3 4"]
    ]
    results = {}
    for groups in (1, 4):
        model = HFModel(folder, device="cpu", max_batch_size=8)
        model.engine.attention_groups = groups
        model.engine._grouped = groups > 1 and model.engine._grouped
        try:
            results[groups] = model.generate(requests)
            stats = model.engine.stats
            share = 1 - stats.decode_columns_cached / stats.decode_columns_read
        finally:
            model.close()
        if groups == 4:
            assert model.model.config._attn_implementation == "selflab_grouped_sdpa"
            assert share < 0.2  # one padded group would read ~60% padding here
    for a, b in zip(results[1], results[4], strict=True):
        assert a.text == b.text
        assert a.token_logprobs == pytest.approx(b.token_logprobs, abs=1e-4)


def test_slot_memory_never_written_cannot_reach_attention(lm, monkeypatch) -> None:
    """The running cache is allocated uninitialised: NaN there (as garbage memory may hold) must not
    reach any row, through growth, removal, joining rows and rows of different lengths."""
    import selflab.models.engine_slots as slots

    words = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda".split()
    requests = [
        GenerationRequest(
            prompt=" ".join(words[: 1 + (i * 4) % 11]),
            sampling=SamplingParams(max_new_tokens=4 + (i * 7) % 13),
        )
        for i in range(7)
    ]
    want = [lm.generate([r])[0].text for r in requests]
    monkeypatch.setattr(slots, "_uninitialised", lambda like, shape: like.new_full(shape, float("nan")))
    lm.engine.prefix_cache.clear()
    assert [c.text for c in lm.generate(requests)] == want
    # Every column of a live row's slot is finite after rows join, leave and the columns grow.
    cache = SlotCache(num_layers=2, device=torch.device("cpu"))
    cache.add([[_row(5, 1.0)], [_row(3, 2.0)]], max_rows=4)
    cache.remove([0])
    cache.add([[_row(2, 3.0)]], max_rows=4)
    cache.ensure_columns(400)
    assert cache.data is not None and cache.data[:, :, : cache.rows].isfinite().all()


def test_an_idle_engine_gives_its_batch_memory_back_and_a_busy_one_reuses_it(lm) -> None:
    """Calls that follow each other reuse the running batch's buffer (no allocation, no page
    faults); an engine left idle (`IDLE_RELEASE_S`) frees it."""
    import time

    from selflab.models.engine import IDLE_RELEASE_S

    request = GenerationRequest(prompt="alpha beta", sampling=SamplingParams(max_new_tokens=3))
    lm.generate([request])
    buffer = lm.engine._cache.data
    assert buffer is not None
    lm.generate([request])
    assert lm.engine._cache.data is buffer  # the next call right after: the same memory
    deadline = time.monotonic() + IDLE_RELEASE_S + 10
    while lm.engine._cache.data is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert lm.engine._cache.data is None
    assert lm.generate([request])[0].text  # and it serves again
