"""SFT/DPO/KTO wrappers take real optimiser steps on the tiny model and write loadable checkpoints."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from selflab.errors import SelflabError
from selflab.models.testing import tiny_llama
from selflab.training import TrainConfig, is_checkpoint, resolve_model_path, train

ROWS = {
    "sft": [{"prompt": "Say hi", "completion": "hi there"}, {"prompt": "Say bye", "completion": "bye now"}],
    "dpo": [
        {"prompt": "Say hi", "chosen": "hi", "rejected": "go away"},
        {"prompt": "Say bye", "chosen": "bye", "rejected": "no"},
    ],
    "kto": [
        {"prompt": "Say hi", "completion": "hi", "label": True},
        {"prompt": "Say hi", "completion": "no", "label": False},
    ],
}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_llama(tmp_path_factory.mktemp("tiny") / "model")


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "model.safetensors"))


@pytest.mark.parametrize("method", ["sft", "dpo", "kto"])
@pytest.mark.parametrize("lora", [True, False])
def test_wrapper_steps_and_changes_weights(tiny: Path, tmp_path: Path, method: str, lora: bool) -> None:
    out = tmp_path / "ckpt"
    cfg = TrainConfig(lora=lora, max_steps=2, learning_rate=1e-2, batch_size=2)
    result = train(method, f"hf:{tiny}", ROWS[method], out, cfg)  # type: ignore[arg-type]
    assert result.steps == 2
    assert result.train_loss is not None and result.train_loss == result.train_loss  # not NaN
    assert is_checkpoint(out) and not (tmp_path / "ckpt.work").exists()
    before, after = _weights(tiny), _weights(out)
    assert set(before) == set(after), "merged LoRA checkpoint must have exactly the base model's tensors"
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert changed, "training did not change any weight"
    if lora:  # LoRA targets linear layers only: embeddings/norms are untouched
        assert not any("norm" in k for k in changed)
        assert result.trainable_params < result.total_params / 2


def test_checkpoint_loads_as_hf_spec(tiny: Path, tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM

    out = tmp_path / "iter-1"
    train("sft", str(tiny), ROWS["sft"], out, TrainConfig(max_steps=1))
    assert resolve_model_path(f"hf:{out}") == out
    model = AutoModelForCausalLM.from_pretrained(out)
    assert model.config.num_hidden_layers == 2


def test_bad_specs_and_data_are_clear_errors(tiny: Path, tmp_path: Path) -> None:
    with pytest.raises(SelflabError, match="HTTP API"):
        resolve_model_path("openai:gpt@http://x/v1")
    with pytest.raises(SelflabError, match="config.json"):
        resolve_model_path(f"hf:{tmp_path}")
    with pytest.raises(SelflabError, match="needs columns"):
        train("dpo", tiny, ROWS["sft"], tmp_path / "x")
    with pytest.raises(SelflabError, match="CPU"):
        if not torch.cuda.is_available():
            train("sft", tiny, ROWS["sft"], tmp_path / "y", TrainConfig(bf16=True))
        else:
            raise SelflabError("CPU")
