"""Weight-only int8 and int4 (`hf:PATH?quant=int8|int4`): close to the dense layer for few rows, the
dense layer itself otherwise, and the engine still decodes exactly what `generate` decodes on the
same quantised model."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from torch import nn

from selflab.errors import ModelSpecError, SelflabError
from selflab.models.hf import HFModel
from selflab.models.lowbit import (
    INT4_GROUP_SIZES,
    INT8_MAX_ROWS,
    int4_available,
    int4_group_for,
    int8_available,
    unpack_int4_reference,
)
from selflab.models.quant import QUANT_CHOICES, Int4Linear, Int8Linear, quantize_int4, quantize_int8
from selflab.models.testing import lively_tiny_llama
from selflab.models.types import GenerationRequest, SamplingParams

needs_int8 = pytest.mark.skipif(not int8_available(), reason="this torch has no _weight_int8pack_mm")
needs_int4 = pytest.mark.skipif(
    not (int4_available() and int8_available()),  # quant=int4 keeps the LM head in int8
    reason="this torch lacks _weight_int4pack_mm_for_cpu / _convert_weight_to_int4pack_for_cpu or int8",
)


def _rel(got: torch.Tensor, want: torch.Tensor) -> float:
    return float((got.float() - want.float()).norm() / want.float().norm())


@needs_int8
def test_int8_linear_is_close_for_few_rows_and_dense_otherwise() -> None:
    torch.manual_seed(0)
    dense = nn.Linear(64, 96)
    q = Int8Linear(dense)
    with torch.inference_mode():
        few = torch.randn(2, INT8_MAX_ROWS // 2, 64)
        got, want = q(few), dense(few)
        assert got.shape == want.shape and got.dtype == want.dtype
        assert not torch.equal(got, want)  # the int8 path really ran
        assert _rel(got, want) < 0.02
        many = torch.randn(INT8_MAX_ROWS + 1, 64)
        assert torch.equal(q(many), dense(many))
    x = torch.randn(1, 64, requires_grad=True)
    assert torch.equal(q(x), dense(x))  # training and autograd always see the dense layer
    assert q.weight is dense.weight and q.bias is dense.bias


def _int4(dense: nn.Linear, group: int) -> Int4Linear:
    holder = nn.Sequential(dense)
    assert quantize_int4(holder, group) == 1
    return holder[0]


@needs_int4
@pytest.mark.parametrize("group", INT4_GROUP_SIZES)
@pytest.mark.parametrize("out_features", [96, 40])  # 40: not a multiple of the kernel's 16-row block
def test_int4_linear_is_close_for_few_rows_and_dense_otherwise(group: int, out_features: int) -> None:
    torch.manual_seed(0)
    dense = nn.Linear(128, out_features)
    q = _int4(dense, group)
    assert q.group_size == group
    with torch.inference_mode():
        few = torch.randn(2, 3, 128)
        got, want = q(few), dense(few)
        assert got.shape == want.shape and got.dtype == want.dtype
        # The kernel multiplies by exactly the dequantised weight; only bf16 rounding of activations
        # and outputs remains (8 mantissa bits: ~0.4% per value, less on a norm).
        exact = few @ unpack_int4_reference(dense.weight, group).T + dense.bias
        assert _rel(got, exact) < 0.01
        # 16 levels over each group's range: error std = range / (15 * sqrt(12)), about 7% of the
        # std of a uniformly initialised weight; the output error is of that order.
        assert 0.005 < _rel(got, want) < 0.1
        many = torch.randn(q.max_rows + 1, 128)
        assert torch.equal(q(many), dense(many))
    x = torch.randn(1, 128, requires_grad=True)
    assert torch.equal(q(x), dense(x))  # training and autograd always see the dense layer
    assert q.weight is dense.weight and q.bias is dense.bias


@needs_int4
def test_int4_group_falls_back_to_a_divisor_and_odd_widths_stay_dense() -> None:
    assert int4_group_for(576, 128) == 64  # SmolLM2's hidden size
    assert int4_group_for(1536, 128) == 128
    assert int4_group_for(48, 32) is None
    holder = nn.Sequential(nn.Linear(48, 32), nn.Linear(64, 32))
    assert quantize_int4(holder, 128) == 1
    assert type(holder[0]) is nn.Linear and holder[1].group_size == 64


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return lively_tiny_llama(tmp_path_factory.mktemp("tiny"))


@needs_int8
def test_quantize_int8_wraps_every_linear_and_keeps_tied_weights(folder: Path) -> None:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(folder)
    layers = model.config.num_hidden_layers
    assert quantize_int8(model) == 7 * layers + 1  # q k v o gate up down, and the LM head
    head = model.get_output_embeddings()
    assert isinstance(head, Int8Linear)
    assert head.weight is model.get_input_embeddings().weight


@needs_int4
def test_quantize_int4_wraps_every_linear_and_keeps_tied_weights(folder: Path) -> None:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(folder)
    layers = model.config.num_hidden_layers
    assert quantize_int4(model) == 7 * layers + 1
    head = model.get_output_embeddings()
    assert isinstance(head, Int8Linear)  # the LM head keeps 8 bits
    assert isinstance(model.model.layers[0].mlp.down_proj, Int4Linear)
    assert head.weight is model.get_input_embeddings().weight
    ids = torch.tensor([[5, 17, 300]])
    with torch.inference_mode():
        assert torch.equal(copy.deepcopy(model)(ids).logits, model(ids).logits)


@pytest.mark.parametrize(
    "quant", [pytest.param("int8", marks=needs_int8), pytest.param("int4", marks=needs_int4)]
)
def test_engine_greedy_equals_generate_on_the_quantised_model(folder: Path, quant: str) -> None:
    prompts = ["The cat", "Once upon a time in a land far away there lived", "1 2 3 4"]
    with HFModel(folder, device="cpu") as lm, HFModel(folder, device="cpu") as plain:
        # The layer wrappers, as `quant=` gives them to architectures the lean decode path does not
        # serve (a llama-family model gets that path instead; its step is held to these wrappers'
        # in tests/models/test_engine_decode.py).
        (quantize_int8 if quant == "int8" else quantize_int4)(lm.model)
        assert isinstance(lm.model.get_output_embeddings(), Int8Linear)
        texts = []
        for prompt in prompts:
            req = GenerationRequest(prompt=prompt, sampling=SamplingParams(max_new_tokens=12))
            got = lm.generate([req])[0]  # one at a time: every decode step has 1 row (quantised path)
            ids = lm.prompt_ids(req)
            with torch.inference_mode():
                out = lm.model.generate(
                    torch.tensor([ids]),
                    attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                    do_sample=False,
                    max_new_tokens=12,
                    pad_token_id=lm.engine.pad_id,
                )
            new = [t for t in out[0, len(ids) :].tolist() if t not in lm.engine.eos_ids]
            assert got.error is None
            assert got.text == lm.tokenizer.decode(new, skip_special_tokens=True)
            texts.append((got.text, plain.generate([req])[0].text))
        # int8 numbers are close to the dense model's: some greedy texts agree. (The tiny model's
        # random x8 weights turn int4's ~7% weight error into different greedy texts; the embedded
        # model's agreement is measured in docs/int4.md.)
        assert quant == "int4" or sum(a == b for a, b in texts) >= 1


@pytest.mark.parametrize("bad", ["int3", "int4-g16", "INT4", "q4_1"])
def test_unknown_quant_is_a_clear_error_naming_the_valid_ones(folder: Path, bad: str) -> None:
    with pytest.raises(ModelSpecError, match="quant") as info:
        HFModel(folder, device="cpu", quant=bad)
    assert isinstance(info.value, SelflabError)
    assert all(choice in str(info.value) for choice in QUANT_CHOICES)


def test_the_hf_spec_takes_quant_as_the_docs_show_it(folder: Path) -> None:
    """`hf:PATH?dtype=...&quant=...` (README, docs/int4.md) reaches HFModel; a bad value names the valid ones."""
    from selflab.models.registry import load_model

    with pytest.raises(ModelSpecError, match="unknown quant 'int5'") as info:
        load_model(f"hf:{folder}?quant=int5", cache=False)
    assert "int4-g64" in str(info.value)
    lm = load_model(f"hf:{folder}?dtype=float32&quant=fp16&threads=1", cache=False)
    try:
        assert lm.quant == "fp16" and lm.engine.decoder is not None  # type: ignore[attr-defined]
        assert lm.generate([GenerationRequest.chat("Hi.", max_new_tokens=4)])[0].error is None
    finally:
        lm.close()  # type: ignore[attr-defined]
