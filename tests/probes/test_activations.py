"""Activation extraction against direct, unbatched forward passes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from selflab.errors import SelflabError
from selflab.probes import activations as A
from selflab.probes.activations import ActivationCache, ProbeInput, extract

TEXTS = [
    "The city of Paris is in France.",
    "Hi",
    "12 + 7 = 19.",
    "The German word 'Hund' means 'dog' in English, as everybody knows.",
]


def _inputs() -> list[ProbeInput]:
    out = []
    for t in TEXTS:
        # answer span: the last word-ish chunk before the final punctuation
        end = len(t.rstrip(".'"))
        start = t.rstrip(".'").rfind(" ") + 1
        out.append(ProbeInput(text=t, span=(start, end)))
    return out


def _direct(model, tok, text: str) -> tuple[list[np.ndarray], list[tuple[int, int]]]:
    """States of one text alone (no padding): embeddings + raw output of every block via hooks."""
    enc = tok(text, return_offsets_mapping=True)
    ids = torch.tensor([enc["input_ids"]])
    outs = {}
    hooks = [
        layer.register_forward_hook(
            lambda m, i, o, k=k: outs.__setitem__(k, o[0] if isinstance(o, tuple) else o)
        )
        for k, layer in enumerate(model.model.layers)
    ]
    try:
        with torch.no_grad():
            emb = model.model.embed_tokens(ids)
            model(input_ids=ids)
    finally:
        for h in hooks:
            h.remove()
    states = [emb[0].numpy()] + [outs[k][0].numpy() for k in range(len(model.model.layers))]
    return states, enc["offset_mapping"]


@pytest.mark.parametrize("padding_side", ["left", "right"])
def test_batched_extraction_matches_direct_forward(tiny_hf, padding_side: str) -> None:
    model, tok = tiny_hf
    inputs = _inputs()
    got = extract(
        model,
        tok,
        inputs,
        positions=("last", "answer_last", "answer_mean", "all"),
        batch_size=3,
        padding_side=padding_side,
    )
    L = model.config.num_hidden_layers
    assert got["last"].data.shape == (len(TEXTS), L + 1, model.config.hidden_size)
    seqs = got["all"].sequences()
    for k, item in enumerate(inputs):
        states, offsets = _direct(model, tok, item.text)
        span_tokens = A._span_token_indices(offsets, item.span)
        assert span_tokens, "the answer span must cover at least one token"
        for layer in range(L + 1):
            ref = states[layer]
            np.testing.assert_allclose(got["last"].data[k, layer], ref[-1], atol=2e-4, rtol=1e-3)
            np.testing.assert_allclose(
                got["answer_last"].data[k, layer], ref[span_tokens[-1]], atol=2e-4, rtol=1e-3
            )
            np.testing.assert_allclose(
                got["answer_mean"].data[k, layer], ref[span_tokens].mean(axis=0), atol=2e-4, rtol=1e-3
            )
            first = max(span_tokens[0] - 1, 0)
            np.testing.assert_allclose(
                seqs[k][:, layer].astype(np.float32), ref[first:], atol=2e-2, rtol=1e-2
            )


def test_last_layer_is_raw_block_output_not_final_norm(tiny_hf) -> None:
    model, tok = tiny_hf
    got = extract(model, tok, [ProbeInput("The city of Paris is in France.")], positions=("last",))
    enc = tok("The city of Paris is in France.", return_tensors="pt")
    with torch.no_grad():
        normed = model(**enc, output_hidden_states=True).hidden_states[-1][0, -1].numpy()
    assert not np.allclose(got["last"].data[0, -1], normed, atol=1e-3)


def test_layer_subset_and_span_tokens(tiny_hf) -> None:
    model, tok = tiny_hf
    got = extract(model, tok, _inputs(), positions=("last",), layers=[0, 3])
    assert got["last"].layers == [0, 3]
    full = extract(model, tok, _inputs(), positions=("last",))
    np.testing.assert_allclose(got["last"].layer(3), full["last"].layer(3), atol=1e-5)
    with pytest.raises(SelflabError):
        got["last"].layer(2)
    # a span in the middle of a token still selects that token; no overlap falls back gracefully
    offsets = [(0, 3), (3, 8), (8, 11)]
    assert A._span_token_indices(offsets, (4, 6)) == [1]
    assert A._span_token_indices(offsets, (3, 11)) == [1, 2]
    assert A._span_token_indices(offsets, (11, 11)) == [2]


def test_bad_inputs_are_user_errors(tiny_hf) -> None:
    model, tok = tiny_hf
    with pytest.raises(SelflabError):
        extract(model, tok, [ProbeInput("abc", span=(1, 9))])
    with pytest.raises(SelflabError):
        extract(model, tok, [ProbeInput("")])
    with pytest.raises(SelflabError, match="no texts"):
        extract(model, tok, [])  # an empty dataset, not a bare numpy 'need at least one array'
    with pytest.raises(SelflabError, match="max_length"):  # not a silent cut before the answer
        extract(model, tok, [ProbeInput("one two three four five six", span=(24, 27))], max_length=4)
    with pytest.raises(SelflabError):
        extract(model, tok, [ProbeInput("abc")], positions=("first",))


def test_cache_hits_skip_extraction(tiny_hf, tmp_path, monkeypatch) -> None:
    model, tok = tiny_hf
    cache = ActivationCache(tmp_path)
    first = cache.get_or_extract("tiny", "demo", model, tok, _inputs(), ["last", "all"])
    calls = []
    monkeypatch.setattr(A, "extract", lambda *a, **k: calls.append(1) or {})
    second = cache.get_or_extract("tiny", "demo", model, tok, _inputs(), ["last", "all"])
    assert calls == []
    np.testing.assert_array_equal(first["last"].data, second["last"].data)
    np.testing.assert_array_equal(first["all"].lengths, second["all"].lengths)
    # changed texts -> a different key -> recomputed
    monkeypatch.undo()
    other = cache.get_or_extract("tiny", "demo", model, tok, _inputs()[:2], ["last"])
    assert other["last"].data.shape[0] == 2
    assert len(list((tmp_path / "tiny").glob("*.safetensors"))) == 3


def test_last_layer_is_raw_block_output_for_gpt2_layout_too(tiny_hf) -> None:
    """GPT-2-style models keep their blocks at `transformer.h`; the last index must still be the raw
    block output (it used to silently become the final-norm output, breaking the layer convention)."""
    from transformers import GPT2Config, GPT2LMHeadModel

    _, tok = tiny_hf
    torch.manual_seed(0)
    ids = {"bos_token_id": 0, "eos_token_id": 0}
    cfg = GPT2Config(vocab_size=len(tok), n_embd=32, n_layer=2, n_head=2, n_positions=128, **ids)
    model = GPT2LMHeadModel(cfg).eval()
    text = "The city of Paris is in France."
    got = extract(model, tok, [ProbeInput(text)], positions=("last",))["last"]
    raw = {}
    hook = model.transformer.h[-1].register_forward_hook(
        lambda m, i, o: raw.__setitem__("x", o[0] if isinstance(o, tuple) else o)
    )
    try:
        with torch.no_grad():
            model(**tok(text, return_tensors="pt"))
    finally:
        hook.remove()
    np.testing.assert_allclose(got.data[0, -1], raw["x"][0, -1].numpy(), atol=1e-4)
    odd = torch.nn.Linear(2, 2)  # no known block layout: an error, not a silent convention change
    odd.config = GPT2Config(n_layer=1)  # type: ignore[assignment]
    with pytest.raises(SelflabError, match="decoder blocks"):
        extract(odd, tok, [ProbeInput(text)])


def test_chat_text_that_starts_with_bos_gets_no_second_bos(tiny_hf) -> None:
    """Llama-3-style tokenizers add BOS, and a rendered chat template (probe-guided generation)
    already starts with it: the states must be read with one BOS, as the model generated them."""
    import copy

    from tokenizers import processors

    model, tok = tiny_hf
    adds_bos = copy.deepcopy(tok)
    bos = tok.bos_token
    adds_bos._tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A", pair=f"{bos} $A $B", special_tokens=[(bos, tok.bos_token_id)]
    )
    assert adds_bos("hi")["input_ids"][0] == tok.bos_token_id  # the copy really adds BOS
    text = f"{bos}user\nWhat is 2 + 2?\n{bos}assistant\n4"
    item = [ProbeInput(text, span=(len(text) - 1, len(text)))]
    got = extract(model, adds_bos, item, positions=("answer_mean",))["answer_mean"].data
    ref = extract(model, tok, item, positions=("answer_mean",))["answer_mean"].data  # one BOS
    np.testing.assert_allclose(got, ref, atol=1e-5)
    # plain statements still get their BOS
    plain = [ProbeInput("The city of Paris is in France.")]
    with_bos = extract(model, adds_bos, plain)["last"].data
    without = extract(model, tok, plain)["last"].data
    assert not np.allclose(with_bos[0, 1:], without[0, 1:], atol=1e-4)
