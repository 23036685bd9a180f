"""Speculative decoding (`engine_speculate`): whatever the draft proposes, a request gets the tokens a
plain decode gives it (greedy and seeded sampled, with log-probabilities, stop strings and token
budgets); constrained rows and wider batches are not speculated; a draft that keeps missing is
paused; bad options are refused with the fix."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import torch
from transformers import AutoConfig, AutoModelForCausalLM

from selflab.errors import ModelSpecError
from selflab.models import engine_speculate
from selflab.models.engine_decode import FastDecoder
from selflab.models.engine_speculate import Speculator
from selflab.models.hf import HFModel
from selflab.models.lowbit import int4_available, int8_available
from selflab.models.testing import lively_tiny_llama
from selflab.models.types import Constraint, GenerationRequest


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return lively_tiny_llama(tmp_path_factory.mktemp("tiny"))


def _requests() -> list[GenerationRequest]:
    return [
        GenerationRequest.chat("Tell me a story.", max_new_tokens=30),
        GenerationRequest.chat("A poem, please.", max_new_tokens=25, logprobs=True),
        GenerationRequest.chat("Story 1.", max_new_tokens=28, temperature=0.9, seed=1),
        GenerationRequest.chat(
            "Story 2.", max_new_tokens=28, temperature=0.7, top_p=0.8, seed=2, logprobs=True
        ),
        GenerationRequest.chat("Story 3.", max_new_tokens=2, temperature=1.2, top_k=20, seed=3),
        GenerationRequest.chat("Tell me a story.", max_new_tokens=1),
    ]


def _foreign_draft(folder: Path) -> FastDecoder:
    """A draft that is another random model of the same shape: it proposes mostly wrong tokens."""
    torch.manual_seed(123)
    other = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(folder)).eval()
    return FastDecoder(other, "dense")


@pytest.mark.parametrize("draft", ["self", "foreign", "int4"])
def test_each_request_gets_the_tokens_of_a_plain_decode(
    folder: Path, draft: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine_speculate, "MIN_ACCEPTANCE", 0.0)  # never pause: every step a cycle
    plain = HFModel(folder, device="cpu", threads=1, speculate="none")
    lm = HFModel(folder, device="cpu", threads=1, speculate="none")
    assert plain.engine.speculator is None and lm.engine.decoder is not None
    if draft == "int4":
        if not (int4_available() and int8_available()):
            pytest.skip("this torch lacks the int4 CPU kernel")
        proposer = FastDecoder(lm.model, "int4-g32")
    else:
        proposer = FastDecoder(lm.model, "dense") if draft == "self" else _foreign_draft(folder)
    lm.engine.speculator = Speculator(lm.engine.decoder, proposer, tokens=3, max_rows=1, timed=False)
    try:
        for request in _requests():  # one at a time: a single running row
            want, got = plain.generate([request])[0], lm.generate([request])[0]
            assert got.error is None
            assert (got.text, got.completion_tokens, got.finish_reason) == (
                want.text,
                want.completion_tokens,
                want.finish_reason,
            ), request
            if request.sampling.logprobs:
                assert want.token_logprobs is not None and got.token_logprobs is not None
                assert got.token_logprobs == pytest.approx(want.token_logprobs, abs=1e-4)
        stats = lm.engine.stats
        assert stats.spec_cycles > 10
        if draft == "self":  # the model drafting for itself: every draft token is accepted
            assert stats.spec_accepted == stats.spec_drafted
        if draft == "foreign":
            assert stats.spec_accepted < stats.spec_drafted / 2
        # Fewer forward passes of the model than tokens: each cycle emits 1 .. tokens + 1.
        assert stats.spec_cycles + stats.fast_decode_steps <= sum(
            r.sampling.max_new_tokens for r in _requests()
        )
    finally:
        lm.close()
        plain.close()


def test_a_stop_string_inside_an_accepted_run_ends_the_text_there(folder: Path) -> None:
    plain = HFModel(folder, device="cpu", threads=1, speculate="none")
    lm = HFModel(folder, device="cpu", threads=1, speculate="none")
    lm.engine.speculator = Speculator(
        lm.engine.decoder, FastDecoder(lm.model, "dense"), tokens=6, timed=False
    )
    try:
        full = plain.generate([GenerationRequest.chat("Tell me a story.", max_new_tokens=30)])[0].text
        stop = full[len(full) // 2 : len(full) // 2 + 3]
        assert stop.strip()
        request = GenerationRequest.chat("Tell me a story.", max_new_tokens=30, stop=(stop,))
        want, got = plain.generate([request])[0], lm.generate([request])[0]
        assert got.text == want.text == full[: full.index(stop)]
        assert got.finish_reason == "stop"
        # The row's cache kept only what the text used: the next turn of this conversation reuses it.
        follow = GenerationRequest.chat("Tell me a story.", max_new_tokens=8, temperature=0.5, seed=4)
        assert lm.generate([follow])[0].text == plain.generate([follow])[0].text
    finally:
        lm.close()
        plain.close()


def test_constrained_rows_and_wider_batches_decode_plainly(folder: Path) -> None:
    lm = HFModel(folder, device="cpu", threads=1, speculate="none")
    lm.engine.speculator = Speculator(lm.engine.decoder, FastDecoder(lm.model, "dense"), tokens=3, max_rows=1)
    try:
        constrained = GenerationRequest.chat(
            "Pick.", max_new_tokens=8, constraint=Constraint.regex("(yes|no)!{0,5}")
        )
        out = lm.generate([constrained])[0]
        assert out.error is None and out.text.startswith(("yes", "no"))
        assert lm.engine.stats.spec_cycles == 0
        both = lm.generate([GenerationRequest.chat(f"Story {i}.", max_new_tokens=12) for i in range(2)])
        assert all(c.error is None for c in both)
        # Two rows run together until the first finishes; then the other is speculated.
        steps = lm.engine.stats.fast_decode_steps
        assert steps >= 11 - 1
    finally:
        lm.close()


def test_a_draft_that_keeps_missing_is_paused(folder: Path) -> None:
    lm = HFModel(folder, device="cpu", threads=1, speculate="none")
    lm.engine.speculator = Speculator(lm.engine.decoder, _foreign_draft(folder), tokens=4, timed=False)
    try:
        out = lm.generate([GenerationRequest.chat("Tell me a story.", max_new_tokens=60)])[0]
        stats = lm.engine.stats
        # After a few poor cycles the running share falls below MIN_ACCEPTANCE: plain steps follow.
        assert 1 <= stats.spec_cycles <= 12
        assert stats.fast_decode_steps >= engine_speculate.PAUSE_STEPS
        assert out.completion_tokens == 60
    finally:
        lm.close()


def test_cycles_slower_than_plain_steps_are_paused(folder: Path) -> None:
    """A draft that proposes the right tokens but slowly (here: 20 ms a step): the engine's plain
    steps are timed, cycles are timed, and cycles stop while they are slower per token."""
    lm = HFModel(folder, device="cpu", threads=1, speculate="none")
    draft = FastDecoder(lm.model, "dense")
    step = draft.step

    def slow_step(*args, **kwargs):
        time.sleep(0.02)
        return step(*args, **kwargs)

    draft.step = slow_step  # type: ignore[method-assign]
    spec = Speculator(lm.engine.decoder, draft, tokens=3)
    lm.engine.speculator = spec
    try:
        out = lm.generate([GenerationRequest.chat("Tell me a story.", max_new_tokens=60)])[0]
        stats = lm.engine.stats
        assert out.completion_tokens == 60
        assert spec.plain_s is not None and spec.cycle_s is not None and spec.cycle_s > spec.plain_s
        # The first step is plain (a time to beat), then one cycle, then a pause of plain steps.
        assert 1 <= stats.spec_cycles <= 3
        assert stats.spec_accepted == stats.spec_drafted
        assert stats.fast_decode_steps >= engine_speculate.PAUSE_STEPS
    finally:
        lm.close()


def test_speculation_options_are_checked(folder: Path) -> None:
    from selflab.models.registry import load_model

    with pytest.raises(ModelSpecError, match="unknown speculate option 'int3'"):
        load_model(f"hf:{folder}?speculate=int3", cache=False)
    with pytest.raises(ModelSpecError, match="draft tokens must be >= 1"):
        load_model(f"hf:{folder}?speculate=int8-dynamic&draft_tokens=0", cache=False)
    with pytest.raises(ModelSpecError, match="draft_tokens='many' is not a number"):
        load_model(f"hf:{folder}?draft_tokens=many", cache=False)
    off = load_model(f"hf:{folder}?speculate=none&threads=1", cache=False)
    on = load_model(f"hf:{folder}?speculate=fp16&draft_tokens=2&threads=1", cache=False)
    quant = load_model(f"hf:{folder}?quant=int8-dynamic&speculate=fp16&threads=1", cache=False)
    try:
        assert isinstance(off, HFModel) and off.engine.speculator is None
        assert isinstance(on, HFModel) and on.engine.speculator is not None
        assert on.engine.speculator.tokens == 2 and on.engine.speculator.draft.fmt == "fp16"
        # A model decoding in a low-bit format already steps at the draft's speed: no speculation.
        assert isinstance(quant, HFModel) and quant.engine.speculator is None
        request = GenerationRequest.chat("Hi there.", max_new_tokens=10)
        assert on.generate([request])[0].text == off.generate([request])[0].text
    finally:
        for lm in (off, on, quant):
            lm.close()


def test_the_draft_follows_weights_changed_between_calls(folder: Path) -> None:
    """Trained in place between calls: the draft's copies are remade with the model's, so a draft of
    the model by itself still has every token accepted (stale copies would propose the old model's)."""
    plain = HFModel(folder, device="cpu", threads=1, speculate="none")
    lm = HFModel(folder, device="cpu", threads=1, speculate="none")
    lm.engine.speculator = Speculator(
        lm.engine.decoder, FastDecoder(lm.model, "dense"), tokens=3, timed=False
    )
    try:
        request = GenerationRequest.chat("Tell me a story about a dragon.", max_new_tokens=16)
        first = lm.generate([request])[0].text
        with torch.no_grad():
            for model in (lm.model, plain.model):
                for layer in model.model.layers:
                    layer.mlp.up_proj.weight.mul_(-1.5)
        stats = lm.engine.stats
        drafted, accepted = stats.spec_drafted, stats.spec_accepted
        got = lm.generate([request])[0].text
        assert got == plain.generate([request])[0].text != first
        assert stats.spec_drafted > drafted and stats.spec_accepted - accepted == stats.spec_drafted - drafted
    finally:
        lm.close()
        plain.close()


@pytest.mark.integration
def test_embedded_model_speculates_with_its_4bit_copy_and_keeps_its_own_text() -> None:
    """The default on the real model: `auto` drafts with the int4 copy where the kernels exist;
    greedy and seeded sampled chat answers equal a plain decode's, and most draft tokens are kept."""
    from selflab.models.registry import load_model

    if not (int4_available() and int8_available()):
        pytest.skip("this torch lacks the int4 CPU kernel")
    plain = load_model("smollm2-135m?speculate=none", cache=False)
    lm = load_model("smollm2-135m", cache=False)
    try:
        assert isinstance(lm, HFModel) and lm.engine.speculator is not None
        assert lm.engine.speculator.draft.fmt == "int4-g32"
        requests = [
            GenerationRequest.chat("What is the capital of France?", max_new_tokens=24),
            GenerationRequest.chat("Give three facts about prime numbers.", max_new_tokens=40),
            GenerationRequest.chat(
                "Write a short poem about rain.", max_new_tokens=40, temperature=0.7, top_p=0.95, seed=5
            ),
        ]
        for request in requests:
            assert lm.generate([request])[0].text == plain.generate([request])[0].text
        stats = lm.engine.stats
        assert stats.spec_cycles > 0 and stats.spec_accepted > 0.6 * stats.spec_drafted
    finally:
        lm.close()
        plain.close()
