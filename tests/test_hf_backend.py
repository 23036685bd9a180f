"""HFModel: rendering, tokenization rules, score and hidden states against manual forward passes."""

from __future__ import annotations

import pytest
import torch

from selflab.errors import ModelSpecError, SelflabError
from selflab.models.hf import HFModel, _length_batches
from selflab.models.testing import tiny_llama
from selflab.models.types import (
    GenerationRequest,
    LocalLanguageModel,
    SamplingParams,
    assistant,
    system,
    user,
)


@pytest.fixture(scope="module")
def lm(tmp_path_factory):
    model = HFModel(tiny_llama(tmp_path_factory.mktemp("tiny")), device="cpu")
    yield model
    model.close()


def manual_logprob(lm: HFModel, prefix: list[int], cont: list[int]) -> float:
    with torch.inference_mode():
        logits = lm.model(torch.tensor([prefix + cont])).logits[0].float()
    logp = torch.log_softmax(logits, -1)
    return sum(float(logp[len(prefix) - 1 + i, t]) for i, t in enumerate(cont))


def test_is_a_local_language_model(lm):
    assert isinstance(lm, LocalLanguageModel)
    assert lm.device.type == "cpu" and lm.model.dtype == torch.float32
    assert lm.name == lm.path.name


def test_score_equals_manual_forward(lm):
    prompt = "The capital of France is"
    conts = [" Paris", " a city of lights and many, many bridges", "", " Lyon."]
    got = lm.score(prompt, conts)
    p_ids = lm.tokenizer(prompt)["input_ids"]
    for cont, value in zip(conts, got, strict=True):
        full = lm.tokenizer(prompt + cont)["input_ids"]
        assert full[: len(p_ids)] == p_ids
        expected = manual_logprob(lm, p_ids, full[len(p_ids) :]) if cont else 0.0
        assert value == pytest.approx(expected, abs=1e-3)
    assert got[2] == 0.0
    assert got[1] < got[0]  # more tokens, less probability (a random model is near uniform)


def test_score_with_chat_messages_uses_open_assistant_turn(lm):
    messages = [system("Be brief."), user("Name a colour.")]
    got = lm.score(messages, ["Blue", "Red"])
    text = lm.render(messages)
    assert text.rstrip().endswith("assistant")
    ids = lm.tokenizer(text, add_special_tokens=False)["input_ids"]
    for cont, value in zip(["Blue", "Red"], got, strict=True):
        full = lm.tokenizer(text + cont, add_special_tokens=False)["input_ids"]
        assert value == pytest.approx(manual_logprob(lm, ids, full[len(ids) :]), abs=1e-3)


def test_score_boundary_merge_counts_merged_token_once(lm):
    # "Hello" + "world" may tokenize differently from "Hello" and "world" apart; the scored tokens are
    # those after the longest common token prefix of the two tokenizations.
    prompt, cont = "Hello wor", "ld and more"
    p_ids = lm.tokenizer(prompt)["input_ids"]
    full = lm.tokenizer(prompt + cont)["input_ids"]
    k = 0
    while k < min(len(p_ids), len(full)) and p_ids[k] == full[k]:
        k += 1
    assert lm.score(prompt, [cont])[0] == pytest.approx(manual_logprob(lm, full[:k], full[k:]), abs=1e-3)


def test_score_rejects_empty_prompt(lm):
    with pytest.raises(SelflabError):
        lm.score("", ["hello"])


def test_hidden_state_shapes_and_batching(lm):
    texts = ["a", "hello world, this is longer", "mid length text"]
    states = lm.hidden_states(texts)
    cfg = lm.model.config
    for text, hs in zip(texts, states, strict=True):
        n = len(lm.tokenizer(text)["input_ids"])
        assert len(hs.layers) == cfg.num_hidden_layers + 1
        assert all(layer.shape == (n, cfg.hidden_size) for layer in hs.layers)
        assert len(hs.tokens) == n and len(hs.offsets) == n
        with torch.inference_mode():  # padded batch equals the text alone
            alone = lm.model.base_model(
                torch.tensor([lm.tokenizer(text)["input_ids"]]), output_hidden_states=True
            )
        for layer, ref in zip(hs.layers, alone.hidden_states, strict=True):
            assert torch.allclose(torch.from_numpy(layer), ref[0].float(), atol=1e-4)
    assert states[1].offsets[-1][1] == len(texts[1])


def test_render_and_assistant_prefix(lm):
    messages = (user("Rate this."),)
    text = lm.render(messages)
    assert "Rate this." in text
    req = GenerationRequest(messages=messages, assistant_prefix="Score:")
    ids = lm.prompt_ids(req)
    assert ids == lm.tokenizer(text + "Score:", add_special_tokens=False)["input_ids"]
    got = lm.generate(
        [req.model_copy(update={"sampling": req.sampling.model_copy(update={"max_new_tokens": 3})})]
    )
    assert not got[0].text.startswith("Score:")
    closed = lm.render([user("hi"), assistant("hello")], add_generation_prompt=False)
    assert closed.rstrip().endswith("<|im_end|>")


def test_raw_prompt_is_used_verbatim(lm):
    req = GenerationRequest(prompt="plain text, no template")
    assert lm.prompt_ids(req) == lm.tokenizer("plain text, no template")["input_ids"]


def test_bad_specs_raise_clear_errors(tmp_path):
    with pytest.raises(ModelSpecError):
        HFModel(tmp_path / "missing")
    folder = tiny_llama(tmp_path / "t")
    with pytest.raises(ModelSpecError):
        HFModel(folder, dtype="float8")
    with pytest.raises(ModelSpecError):
        HFModel(folder, device="tpu")


def test_length_batches_respects_budget():
    lengths = [5, 100, 7, 50, 1]
    batches = _length_batches(list(range(5)), lengths, budget=110)
    assert sorted(i for b in batches for i in b) == [0, 1, 2, 3, 4]
    for b in batches:
        assert len(b) == 1 or len(b) * max(lengths[i] for i in b) <= 110


def test_close_resolves_pending_with_error(tmp_path):
    model = HFModel(tiny_llama(tmp_path / "c"), device="cpu")
    ids = model.prompt_ids(GenerationRequest.chat("hi"))
    pending = [model.engine.submit(ids, SamplingParams(max_new_tokens=5000)) for _ in range(3)]
    model.close()
    for future in pending:
        got = future.result(timeout=30)
        assert got.finish_reason in ("error", "length")
    assert any(f.result().finish_reason == "error" for f in pending)
    with pytest.raises(RuntimeError):
        model.generate([GenerationRequest.chat("hi")])


def test_score_runs_a_long_shared_prompt_once_with_the_same_numbers(lm):
    prompt = "You are a careful judge. Read the question and the answer, then rate the answer. " * 2 + "wor"
    conts = ["ld", " Paris is the capital", "", " x", "ld and more words to make it longer than the others"]
    got = lm.score(prompt, conts)
    p_ids = lm.tokenizer(prompt)["input_ids"]
    assert len(p_ids) >= 16
    items = []
    for cont, value in zip(conts, got, strict=True):
        full = lm.tokenizer(prompt + cont)["input_ids"]
        k = 0
        while k < min(len(p_ids), len(full)) and p_ids[k] == full[k]:
            k += 1
        items.append((full, k))
        expected = manual_logprob(lm, full[:k], full[k:]) if cont else 0.0
        assert value == pytest.approx(expected, abs=1e-3)
    assert got == pytest.approx(lm._score_tokens(items), abs=1e-3)  # the plain batched path agrees
