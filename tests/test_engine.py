"""The batching engine against transformers' own `generate`, on a tiny random llama.

The tiny model's block weights are scaled up so that greedy decoding wanders through varied tokens
instead of repeating one: a padding or position bug then changes the text, not just a decimal.
"""

from __future__ import annotations

import asyncio
import shutil
import threading
import time
from pathlib import Path

import pytest
import torch

from selflab.models.engine_sampling import choose_tokens
from selflab.models.hf import HFModel
from selflab.models.testing import tiny_llama
from selflab.models.types import GenerationRequest, SamplingParams


def lively_tiny_llama(root: Path) -> Path:
    """tiny_llama with its block weights x8 (varied greedy text), written next to it."""
    from transformers import AutoModelForCausalLM

    base = tiny_llama(root / "base")
    out = root / "lively"
    model = AutoModelForCausalLM.from_pretrained(base)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if ".layers." in name and param.dim() == 2:
                param.mul_(8.0)
    model.save_pretrained(out)
    for f in base.iterdir():
        if f.name.startswith(("tokenizer", "chat_template", "special_tokens")):
            shutil.copy(f, out / f.name)
    return out


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return lively_tiny_llama(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="module")
def lm(folder):
    model = HFModel(folder, device="cpu", max_batch_size=16)
    yield model
    model.close()


PROMPTS = [
    "The cat",
    "Once upon a time in a land far away there lived",
    "1 2 3 4",
    "A much longer prompt that goes on and on, with commas, numbers like 42 and 7, and words " * 3,
    "Q: why? A:",
    "hello",
]


def raw(prompt: str, **sampling) -> GenerationRequest:
    return GenerationRequest(prompt=prompt, sampling=SamplingParams(**sampling))


def hf_greedy(lm: HFModel, ids: list[int], max_new_tokens: int) -> tuple[list[int], list[float]]:
    """Reference: transformers generate on the unpadded prompt alone; ids and chosen-token logprobs."""
    with torch.inference_mode():
        out = lm.model.generate(
            torch.tensor([ids]),
            attention_mask=torch.ones(1, len(ids), dtype=torch.long),
            do_sample=False,
            max_new_tokens=max_new_tokens,
            output_logits=True,
            return_dict_in_generate=True,
            pad_token_id=lm.engine.pad_id,
        )
    new = out.sequences[0, len(ids) :].tolist()
    logps = [
        float(torch.log_softmax(step[0].float(), -1)[t]) for step, t in zip(out.logits, new, strict=False)
    ]
    eos = [i for i, t in enumerate(new) if t in lm.engine.eos_ids]
    if eos:
        new, logps = new[: eos[0]], logps[: eos[0]]
    return new, logps


def test_greedy_matches_hf_generate_with_mixed_lengths_submitted_concurrently(lm):
    requests = [
        raw(p, max_new_tokens=n, logprobs=True) for p, n in zip(PROMPTS, [5, 17, 9, 12, 3, 20], strict=True)
    ]
    results: list = [None] * len(requests)

    def call(i: int) -> None:
        results[i] = lm.generate([requests[i]])[0]

    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(requests))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    distinct = set()
    for req, got in zip(requests, results, strict=True):
        ids = lm.prompt_ids(req)
        ref_ids, ref_logps = hf_greedy(lm, ids, req.sampling.max_new_tokens)
        assert got.error is None
        assert got.text == lm.tokenizer.decode(ref_ids, skip_special_tokens=True)
        assert got.completion_tokens == len(ref_ids)
        assert got.prompt_tokens == len(ids)
        assert got.finish_reason == ("length" if len(ref_ids) == req.sampling.max_new_tokens else "stop")
        assert got.token_logprobs == pytest.approx(ref_logps, abs=2e-3)
        assert got.tokens == lm.tokenizer.convert_ids_to_tokens(ref_ids)
        distinct.add(got.text)
    assert len(distinct) == len(requests)  # the model is lively enough for this test to mean something


def test_requests_join_a_running_batch(lm):
    first = lm.engine.submit(lm.prompt_ids(raw(PROMPTS[1])), SamplingParams(max_new_tokens=60))
    steps = lm.engine.stats.decode_steps
    deadline = time.time() + 30
    while lm.engine.stats.decode_steps < steps + 3 and time.time() < deadline:
        time.sleep(0.002)
    late = [raw(p, max_new_tokens=8) for p in PROMPTS[2:5]]
    assert not first.done()  # the late requests really join while the first one runs
    got = lm.generate(late)
    assert not first.done() or first.result().completion_tokens == 60
    for req, g in zip(late, got, strict=True):
        ref_ids, _ = hf_greedy(lm, lm.prompt_ids(req), 8)
        assert g.text == lm.tokenizer.decode(ref_ids, skip_special_tokens=True)
    ref_first, _ = hf_greedy(lm, lm.prompt_ids(raw(PROMPTS[1])), 60)
    assert first.result().text == lm.tokenizer.decode(ref_first, skip_special_tokens=True)


def test_stop_string_truncates_and_reports_stop(lm):
    full = lm.generate([raw(PROMPTS[0], max_new_tokens=20)])[0]
    assert full.finish_reason == "length"
    words = full.text.split()
    stop = words[len(words) // 2]
    cut = full.text.index(stop)
    got = lm.generate([raw(PROMPTS[0], max_new_tokens=20, stop=("never-appears", stop), logprobs=True)])[0]
    assert got.finish_reason == "stop"
    assert got.text == full.text[:cut]
    assert len(got.token_logprobs) == got.completion_tokens == len(got.tokens)
    assert lm.tokenizer.convert_tokens_to_string(got.tokens).startswith(got.text)


def test_eos_finishes_with_stop(lm):
    req = raw(PROMPTS[2], max_new_tokens=10)
    ids, _ = hf_greedy(lm, lm.prompt_ids(req), 10)
    saved = set(lm.engine.eos_ids)
    lm.engine.eos_ids.add(ids[4])  # pretend the 5th greedy token is end-of-sequence
    try:
        got = lm.generate([req])[0]
    finally:
        lm.engine.eos_ids.clear()
        lm.engine.eos_ids.update(saved)
    first = ids.index(ids[4])
    assert got.finish_reason == "stop"
    assert got.completion_tokens == first
    assert got.text == lm.tokenizer.decode(ids[:first], skip_special_tokens=True)


def test_seed_reproducible_independent_of_batch_mates(lm):
    seeded = raw(PROMPTS[3], temperature=1.0, seed=1234, max_new_tokens=16)
    alone = lm.generate([seeded])[0].text
    mates = [
        raw(p, temperature=0.9, top_p=0.9, max_new_tokens=n)
        for p, n in zip(PROMPTS, [4, 30, 7, 12, 2, 9], strict=True)
    ]
    crowded = lm.generate([*mates[:3], seeded, *mates[3:]])[3].text
    assert crowded == alone
    other = lm.generate([raw(PROMPTS[3], temperature=1.0, seed=99, max_new_tokens=16)])[0].text
    assert other != alone
    unseeded = lm.generate([raw(PROMPTS[3], temperature=1.0, max_new_tokens=16)] * 2)
    assert unseeded[0].text != unseeded[1].text  # each unseeded request gets its own stream


def test_logprobs_consistent_with_score(lm):
    prompt = PROMPTS[1]
    got = lm.generate([raw(prompt, temperature=1.0, seed=7, max_new_tokens=12, logprobs=True)])[0]
    ids = lm.prompt_ids(raw(prompt))
    assert lm._encode(prompt + got.text, raw=True)[len(ids) :] == lm.tokenizer.convert_tokens_to_ids(
        got.tokens
    )
    assert sum(got.token_logprobs) == pytest.approx(lm.score(prompt, [got.text])[0], abs=1e-2)


def test_prefix_reuse_gives_same_outputs(lm):
    rubric = "You are a strict judge. Score the answer from 1 to 5 using the rubric: " * 4
    requests = [raw(rubric + tail, max_new_tokens=10, logprobs=True) for tail in ["A", "Answer two", "3 x"]]
    stats = lm.engine.stats
    before = stats.prefix_reused_tokens + stats.prefix_cached_tokens
    with_reuse = lm.generate(requests)
    # Shared within one admission step, or (when the worker took the first request alone) read from
    # the first prompt's prefix-cache entry, made at its admission.
    rubric_ids = len(lm.prompt_ids(raw(rubric)))
    assert stats.prefix_reused_tokens + stats.prefix_cached_tokens - before >= 2 * (rubric_ids - 2)
    lm.engine.prefix_reuse = False
    try:
        without = lm.generate(requests)
    finally:
        lm.engine.prefix_reuse = True
    for a, b in zip(with_reuse, without, strict=True):
        assert a.text == b.text
        assert a.token_logprobs == pytest.approx(b.token_logprobs, abs=1e-3)
    for req, a in zip(requests, with_reuse, strict=True):
        ref_ids, _ = hf_greedy(lm, lm.prompt_ids(req), 10)
        assert a.text == lm.tokenizer.decode(ref_ids, skip_special_tokens=True)


def test_agenerate_and_bad_prompts(lm):
    async def many():
        return await lm.agenerate([raw(p, max_new_tokens=4) for p in PROMPTS[:3]])

    got = asyncio.run(many())
    assert [g.completion_tokens for g in got] == [4, 4, 4]
    too_long = lm.engine.submit([5] * (lm.engine.max_len + 1), SamplingParams(max_new_tokens=2)).result(
        timeout=30
    )
    assert too_long.finish_reason == "error" and "context" in too_long.error
    empty = lm.engine.submit([], SamplingParams(max_new_tokens=2)).result(timeout=30)
    assert empty.finish_reason == "error"


def test_choose_tokens_filters_by_hand():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]] * 3))
    gens = [torch.Generator().manual_seed(s) for s in range(3)]
    params = [
        SamplingParams(temperature=1.0, top_p=0.5),  # nucleus = {0}
        SamplingParams(temperature=1.0, top_k=2),  # {0, 1}
        SamplingParams(temperature=1.0, top_p=0.79),  # 0.5 + 0.3 >= 0.79 -> {0, 1}
    ]
    seen: list[set[int]] = [set(), set(), set()]
    for _ in range(300):
        toks, lps = choose_tokens(logits, params, gens, want_logprobs=True)
        for r in range(3):
            seen[r].add(int(toks[r]))
            assert float(lps[r]) == pytest.approx(float(logits[r, toks[r]]), abs=1e-5)
    assert seen == [{0}, {0, 1}, {0, 1}]
    # Frequencies follow the renormalised distribution (0.5/0.8 = 0.625 for token 0 under top-k 2).
    g = torch.Generator().manual_seed(0)
    counts = [0, 0]
    for _ in range(4000):
        counts[int(choose_tokens(logits[:1], [params[1]], [g], False)[0][0])] += 1
    assert counts[0] / 4000 == pytest.approx(0.625, abs=0.03)


def test_choose_tokens_greedy_and_idle_rows():
    logits = torch.tensor([[0.0, 2.0, 1.0], [3.0, 0.0, 0.0]])
    toks, lps = choose_tokens(logits, [SamplingParams(), None], [None, None], want_logprobs=False)
    assert int(toks[0]) == 1 and lps is None


@pytest.mark.parametrize(
    "bad",
    [
        {"temperature": -0.1},
        {"top_p": 0.0},
        {"top_p": 1.5},
        {"top_k": -1},
        {"max_new_tokens": 0},
        {"nope": 1},
    ],
)
def test_invalid_sampling_rejected(bad):
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        SamplingParams(**bad)


def test_thread_tuner_picks_the_faster_setting_and_restores_it():
    from selflab.models.engine_threads import ThreadTuner

    before = torch.get_num_threads()
    tuner = ThreadTuner(max_threads=max(2, before), every_s=0.0)
    try:
        tuner.maybe_tune()
        one, many, choice = tuner.history[-1]
        assert choice == (1 if one < many else tuner.max_threads)
        assert torch.get_num_threads() == choice
    finally:
        torch.set_num_threads(before)


def test_prefix_cache_serves_a_continued_conversation(lm):
    """Turn 2 extends turn 1's prompt and answer: only the new tokens are computed, output unchanged."""
    base = "Story so far: the keeper counted the sheep, one by one, until the lamp went out. " * 2
    first = lm.generate([raw(base, max_new_tokens=12)])[0]
    follow = [base + first.text + " Then what happened?", base + first.text + " 7 8 9", "unrelated short one"]
    before = lm.engine.stats.prefix_cached_tokens
    hits = lm.engine.prefix_cache.hits
    got = lm.generate(
        [raw(p, max_new_tokens=10, logprobs=True) for p in follow]
    )  # hits and a miss in one prefill
    assert lm.engine.prefix_cache.hits >= hits + 2
    # Block-aligned (16 tokens), and the re-tokenised boundary between turns may differ.
    assert lm.engine.stats.prefix_cached_tokens - before >= 2 * (len(lm.prompt_ids(raw(base))) - 32)
    for p, g in zip(follow, got, strict=True):
        ref_ids, ref_logps = hf_greedy(lm, lm.prompt_ids(raw(p)), 10)
        assert g.text == lm.tokenizer.decode(ref_ids, skip_special_tokens=True)
        assert g.token_logprobs == pytest.approx(ref_logps, abs=2e-3)


def test_prefix_cache_off_and_cleared(folder):
    model = HFModel(folder, device="cpu", max_batch_size=8, prefix_cache_mb=0)
    try:
        assert model.engine.prefix_cache is None
        prompt = "A long enough prompt about rivers and mountains and the sea, repeated. " * 3
        a = model.generate([raw(prompt, max_new_tokens=6)] * 2)
        assert model.engine.stats.prefix_cached_tokens == 0 and a[0].text == a[1].text
    finally:
        model.close()
    cached = HFModel(folder, device="cpu", max_batch_size=8)
    try:
        cached.generate([raw(prompt, max_new_tokens=6)])
        assert len(cached.engine.prefix_cache) == 1
        cached.engine.clear_prefix_cache()
        again = cached.generate([raw(prompt, max_new_tokens=6)])[0]
        assert cached.engine.stats.prefix_cached_tokens == 0 and again.text == a[0].text
    finally:
        cached.close()


def test_engine_uses_the_supported_cache_keyword(lm):
    """transformers renamed forward's `past_key_values` to `cache` (old name removed in 5.40): the
    engine and `score` must not trigger the deprecation path."""
    import inspect
    import warnings

    from selflab.models.engine_cache import cache_kwargs

    params = inspect.signature(type(lm.model).forward).parameters
    key = next(iter(cache_kwargs(lm.model, None)))
    assert key == ("cache" if "cache" in params else "past_key_values")
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*past_key_values.*")
        lm.engine.clear_prefix_cache()
        assert lm.generate([raw(PROMPTS[3], max_new_tokens=3)])[0].completion_tokens >= 1
        lm.score(PROMPTS[3], [" a b c", " d e"])  # the shared-prefix path


def test_batched_top_p_equals_row_by_row_and_ignores_batch_mates():
    """All top-p rows of a step are sampled in one batched computation; each row's token must be the
    one the exact row-by-row sampler picks from the same uniform draw, whoever shares the batch, and
    a nucleus wider than the candidate window must still be exact (widened to the whole vocabulary)."""
    from selflab.models.engine_sampling import _filtered_sorted, _pick

    g = torch.Generator().manual_seed(1)
    vocab = 600
    logits = torch.randn(5, vocab, generator=g) * 3
    logits[4] = 0.0  # flat: the 0.95 nucleus needs 570 tokens, more than the 256-token window
    params = [SamplingParams(temperature=t, top_p=p) for t, p in [(0.7, 0.95), (1.0, 0.5), (1.3, 0.9)]]
    params += [SamplingParams(temperature=0.7, top_p=0.95), SamplingParams(temperature=1.0, top_p=0.95)]
    for seed in range(20):
        gens = [torch.Generator().manual_seed(seed * 10 + r) for r in range(5)]
        got, _ = choose_tokens(logits.clone(), list(params), gens, want_logprobs=False)
        for r in range(5):
            u = torch.rand(1, generator=torch.Generator().manual_seed(seed * 10 + r), dtype=torch.float64)
            probs, ids = _filtered_sorted(logits[r] / params[r].temperature, 0, params[r].top_p)
            assert int(got[r]) == int(ids[_pick(probs.unsqueeze(0), u)[0]])
        # The same row alone (no batch mates) draws the same token.
        alone, _ = choose_tokens(
            logits[2:3].clone(), [params[2]], [torch.Generator().manual_seed(seed * 10 + 2)], False
        )
        assert int(alone[0]) == int(got[2])


def test_an_abandoned_request_stops_decoding_and_a_closed_stream_abandons_it(lm):
    """A streaming client that goes away must not leave its row decoding for nobody up to
    max_new_tokens: `JobFuture.abandon()` finishes it at the next token, and closing the stream's
    iterator (what a server does on a disconnect) abandons it."""
    from selflab.models.engine_jobs import ABANDONED
    from selflab.models.streaming import stream_completion

    first = threading.Event()
    req = raw(PROMPTS[1], max_new_tokens=5000, temperature=1.0, seed=3)
    future = lm.engine.submit(lm.prompt_ids(req), req.sampling, on_tokens=lambda ids: first.set())
    assert first.wait(60)
    future.abandon()
    out = future.result(timeout=60)
    assert out.finish_reason == "error" and out.error == ABANDONED and out.completion_tokens < 5000

    stream = stream_completion(lm, req)
    assert isinstance(next(stream), str)
    stream.close()  # the client went away
    for _ in range(600):  # the engine finishes the row at its next token
        if not lm.engine._rows and not lm.engine._waiting:
            break
        time.sleep(0.1)
    assert not lm.engine._rows and not lm.engine._waiting
    assert lm.generate([raw(PROMPTS[0], max_new_tokens=3)])[0].finish_reason == "length"  # still serving
