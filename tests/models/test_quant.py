"""Weight-only int8 (`hf:PATH?quant=int8`): close to the dense layer for few rows, the dense layer
itself otherwise, and the engine still decodes exactly what `generate` decodes on the same model."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from selflab.errors import ModelSpecError
from selflab.models.hf import HFModel
from selflab.models.quant import INT8_MAX_ROWS, Int8Linear, int8_available, quantize_int8
from selflab.models.testing import lively_tiny_llama
from selflab.models.types import GenerationRequest, SamplingParams

pytestmark = pytest.mark.skipif(not int8_available(), reason="this torch has no _weight_int8pack_mm")


def test_int8_linear_is_close_for_few_rows_and_dense_otherwise() -> None:
    torch.manual_seed(0)
    dense = nn.Linear(64, 96)
    q = Int8Linear(dense)
    with torch.inference_mode():
        few = torch.randn(2, INT8_MAX_ROWS // 2, 64)
        got, want = q(few), dense(few)
        assert got.shape == want.shape and got.dtype == want.dtype
        assert not torch.equal(got, want)  # the int8 path really ran
        assert (got - want).norm() / want.norm() < 0.02
        many = torch.randn(INT8_MAX_ROWS + 1, 64)
        assert torch.equal(q(many), dense(many))
    x = torch.randn(1, 64, requires_grad=True)
    assert torch.equal(q(x), dense(x))  # training and autograd always see the dense layer
    assert q.weight is dense.weight and q.bias is dense.bias


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return lively_tiny_llama(tmp_path_factory.mktemp("tiny"))


def test_quantize_wraps_every_linear_and_keeps_tied_weights(folder: Path) -> None:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(folder)
    layers = model.config.num_hidden_layers
    assert quantize_int8(model) == 7 * layers + 1  # q k v o gate up down, and the LM head
    head = model.get_output_embeddings()
    assert isinstance(head, Int8Linear)
    assert head.weight is model.get_input_embeddings().weight


def test_engine_greedy_equals_generate_on_the_int8_model(folder: Path) -> None:
    prompts = ["The cat", "Once upon a time in a land far away there lived", "1 2 3 4"]
    with HFModel(folder, device="cpu", quant="int8") as lm, HFModel(folder, device="cpu") as plain:
        texts = []
        for prompt in prompts:
            req = GenerationRequest(prompt=prompt, sampling=SamplingParams(max_new_tokens=12))
            got = lm.generate([req])[0]  # one at a time: every decode step has 1 row (int8 path)
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
        # int8 numbers are close to the dense model's: most greedy texts agree
        assert sum(a == b for a, b in texts) >= 1


def test_unknown_quant_is_a_clear_error(folder: Path) -> None:
    with pytest.raises(ModelSpecError, match="quant"):
        HFModel(folder, device="cpu", quant="int3")
