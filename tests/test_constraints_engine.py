"""Constrained decoding in the batching engine, on a tiny random llama (varied greedy text)."""

from __future__ import annotations

import llguidance as llg
import numpy as np
import pytest
import torch

from selflab.models.constraints import ConstraintError, text_matches, validate
from selflab.models.hf import HFModel
from selflab.models.testing import lively_tiny_llama
from selflab.models.types import Constraint, GenerationRequest, SamplingParams, user

SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 8},
        "age": {"type": "integer", "minimum": 0, "maximum": 120},
        "mood": {"enum": ["happy", "sad"]},
    },
    "required": ["name", "age", "mood"],
    "additionalProperties": False,
}
CONSTRAINTS = [
    Constraint.regex(r"(yes|no)"),
    Constraint.regex(r"[0-9]{1,3}(\.[0-9])?"),
    Constraint.regex(r"[a-z]{2,6} [a-z]{2,6}"),
    Constraint.grammar('start: "Score: " /[1-5]/'),
    Constraint.grammar(
        'start: move ("," move){0,2}\nmove: "ask " NAME | "accuse " NAME\nNAME: "Ann" | "Bob"'
    ),
    Constraint.json_schema(SCHEMA),
]
PROMPTS = ["The cat", "Once upon a time there lived", "1 2 3 4", "Q: why? A:"]


@pytest.fixture(scope="module")
def lm(tmp_path_factory):
    model = HFModel(lively_tiny_llama(tmp_path_factory.mktemp("tiny")), device="cpu", max_batch_size=16)
    yield model
    model.close()


def raw(prompt: str, **sampling) -> GenerationRequest:
    return GenerationRequest(prompt=prompt, sampling=SamplingParams(**sampling))


def test_every_output_matches_its_constraint_across_seeds(lm):
    requests = [
        raw(PROMPTS[seed % len(PROMPTS)], temperature=t, top_p=p, seed=seed, max_new_tokens=64, constraint=c)
        for c in CONSTRAINTS
        for seed in range(6)
        for t, p in [(1.0, 1.0), (0.7, 0.9)]
    ]
    outs = lm.generate(requests)
    for request, out in zip(requests, outs, strict=True):
        assert out.finish_reason == "stop", (request.sampling.constraint, out)
        assert text_matches(request.sampling.constraint, out.text), (request.sampling.constraint, out.text)
    for c in CONSTRAINTS[1:]:  # sampling explores: not every seed gives the same text
        texts = {o.text for r, o in zip(requests, outs, strict=True) if r.sampling.constraint == c}
        assert len(texts) > 1, c


def test_unconstrained_rows_identical_with_or_without_constrained_mates(lm):
    free = [
        raw(PROMPTS[0], max_new_tokens=12),
        raw(PROMPTS[1], temperature=1.0, seed=5, max_new_tokens=12, logprobs=True),
        raw(PROMPTS[2], temperature=0.8, top_k=20, seed=6, max_new_tokens=9),
    ]
    alone = lm.generate(free)
    mates = [
        raw(p, temperature=1.0, seed=i, max_new_tokens=20, constraint=c)
        for i, (p, c) in enumerate(zip(PROMPTS * 2, CONSTRAINTS, strict=False))
    ]
    mixed = lm.generate([mates[0], free[0], *mates[1:3], free[1], *mates[3:], free[2]])
    together = [mixed[1], mixed[4], mixed[-1]]
    for a, b in zip(alone, together, strict=True):
        assert a.text == b.text
        # Logprobs agree to float rounding (a different batch shape sums in a different order).
        assert a.token_logprobs == (
            None if b.token_logprobs is None else pytest.approx(b.token_logprobs, abs=1e-4)
        )


def brute_force_greedy(
    lm: HFModel, ids: list[int], constraint: Constraint, max_new: int
) -> tuple[list[int], str]:
    """Reference: a full forward over the whole sequence each step (no cache, no batch), then the
    most likely token among those the grammar allows. The allowed set comes from llguidance's
    single-matcher mask (it allows only the canonical token where the grammar forces bytes)."""
    matcher = llg.LLMatcher(lm.engine.token_masks().tokenizer, validate(constraint), log_level=0)
    eos = lm.engine.eos_ids
    seq, out = list(ids), []
    for _ in range(max_new):
        with torch.inference_mode():
            logits = lm.model(input_ids=torch.tensor([seq]), use_cache=False).logits[0, -1].float()
        bits = np.frombuffer(matcher.compute_bitmask(), dtype=np.uint8)
        allowed = np.unpackbits(bits, bitorder="little")[: logits.shape[0]].astype(bool)
        assert allowed.any()
        logits = logits.masked_fill(torch.from_numpy(~allowed), float("-inf"))
        token = int(logits.argmax())
        if token in eos:
            assert matcher.is_accepting()
            return out, "stop"
        assert matcher.consume_token(token)
        seq.append(token)
        out.append(token)
        if matcher.is_stopped():
            return out, "stop"
    return out, "length"


@pytest.mark.parametrize("index", range(len(CONSTRAINTS)))
def test_greedy_constrained_equals_brute_force_reference(lm, index):
    c = CONSTRAINTS[index]
    requests = [raw(p, max_new_tokens=24, constraint=c) for p in PROMPTS]
    outs = lm.generate(requests)
    for request, out in zip(requests, outs, strict=True):
        want, finish = brute_force_greedy(lm, lm.prompt_ids(request), c, 24)
        assert out.text == lm.tokenizer.decode(want, skip_special_tokens=True)
        assert out.completion_tokens == len(want)
        assert out.finish_reason == finish


def test_invalid_constraint_is_rejected_at_submission(lm):
    good = raw("x", max_new_tokens=2)
    for bad in [
        Constraint.regex("[a-"),
        Constraint.grammar("start: nowhere"),
        Constraint.json_schema("{oops"),
    ]:
        with pytest.raises(ConstraintError, match=f"invalid {bad.kind}"):
            lm.generate([good, raw("x", constraint=bad)])
    before = lm.engine.stats.requests
    with pytest.raises(ConstraintError):
        lm.engine.submit([1, 2, 3], SamplingParams(constraint=Constraint.regex("(")))
    assert lm.engine.stats.requests == before  # nothing was queued
    assert lm.generate([good])[0].finish_reason in ("stop", "length")  # the engine still serves


def test_grammar_unsatisfiable_within_budget_ends_with_length(lm):
    outs = lm.generate(
        [
            raw(PROMPTS[0], max_new_tokens=4, constraint=Constraint.regex("[0-9]{40}")),
            raw(
                PROMPTS[1],
                temperature=1.0,
                seed=3,
                max_new_tokens=3,
                constraint=Constraint.json_schema(SCHEMA),
            ),
        ]
    )
    for out in outs:
        assert out.finish_reason == "length"
        assert out.completion_tokens in (3, 4)
        assert out.error is None


def test_empty_language_is_a_recorded_error_not_a_crash(lm):
    out = lm.generate([raw("x", max_new_tokens=5, constraint=Constraint.regex(r"[^\s\S]"))])[0]
    assert out.finish_reason == "error"
    assert "cannot be completed" in out.error or "allows no next token" in out.error
    assert lm.generate([raw("x", max_new_tokens=2)])[0].finish_reason in ("stop", "length")


def test_constraint_applies_after_assistant_prefix_in_chat(lm):
    request = GenerationRequest(
        messages=(user("Rate it"),),
        assistant_prefix="Verdict: ",
        sampling=SamplingParams(
            temperature=1.0, seed=1, max_new_tokens=8, constraint=Constraint.regex("[1-5]/5")
        ),
    )
    out = lm.generate([request])[0]
    assert text_matches(Constraint.regex("[1-5]/5"), out.text)
    assert out.finish_reason == "stop"


def test_constrained_logprobs_are_the_model_distribution(lm):
    c = CONSTRAINTS[3]
    request = raw(PROMPTS[1], max_new_tokens=10, logprobs=True, constraint=c)
    out = lm.generate([request])[0]
    assert len(out.token_logprobs) == len(out.tokens) == out.completion_tokens
    seq = lm.prompt_ids(request)
    for token, logprob in zip(
        lm.tokenizer.convert_tokens_to_ids(out.tokens), out.token_logprobs, strict=True
    ):
        with torch.inference_mode():
            logits = lm.model(input_ids=torch.tensor([seq]), use_cache=False).logits[0, -1].float()
        assert logprob == pytest.approx(float(torch.log_softmax(logits, -1)[token]), abs=1e-3)
        seq.append(token)


def test_constrained_requests_use_the_prefix_cache_with_same_results(lm):
    history = "A long conversation that a game agent keeps extending turn after turn, " * 3
    first = raw(history, max_new_tokens=6, constraint=CONSTRAINTS[0])
    out1 = lm.generate([first])[0]
    follow = raw(
        history + out1.text + " and then",
        temperature=1.0,
        seed=9,
        max_new_tokens=24,
        constraint=CONSTRAINTS[4],
    )
    before = lm.engine.stats.prefix_cached_tokens
    cached = lm.generate([follow])[0]
    assert lm.engine.stats.prefix_cached_tokens > before
    lm.engine.clear_prefix_cache()
    fresh = lm.generate([follow])[0]
    assert cached.text == fresh.text
    assert text_matches(CONSTRAINTS[4], cached.text)


def test_seeded_constrained_sample_is_independent_of_batch_mates(lm):
    seeded = raw(PROMPTS[1], temperature=1.0, seed=42, max_new_tokens=40, constraint=CONSTRAINTS[5])
    alone = lm.generate([seeded])[0].text
    crowd = [raw(p, temperature=0.9, max_new_tokens=n) for p, n in zip(PROMPTS, [3, 17, 8, 30], strict=True)]
    crowd += [
        raw(p, temperature=1.0, seed=7, max_new_tokens=30, constraint=c)
        for p, c in zip(PROMPTS, CONSTRAINTS, strict=False)
    ]
    assert lm.generate([*crowd[:4], seeded, *crowd[4:]])[4].text == alone
