"""Padding-free SFT batches change cost only: the same loss as padded batches, and only for models
that keep packed sequences apart."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from selflab.models.testing import tiny_llama
from selflab.training import TrainConfig, batching, train
from selflab.training.batching import (
    PackWhenCheaper,
    attention_pairs_per_token,
    keeps_packed_sequences_apart,
)

ROWS = [{"prompt": "Say hi " * n, "completion": "hi there " * (1 + n % 3)} for n in (1, 9, 2, 4, 1, 12)]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_llama(tmp_path_factory.mktemp("tiny") / "model")


def test_a_llama_keeps_packed_sequences_apart(tiny: Path) -> None:
    from transformers import AutoModelForCausalLM

    assert keeps_packed_sequences_apart(AutoModelForCausalLM.from_pretrained(tiny))


class _Leaky(torch.nn.Module):
    """A model whose every position sees the whole row before it, whatever the position ids."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = torch.nn.Embedding(50, 8)

    def get_input_embeddings(self) -> torch.nn.Embedding:
        return self.embed

    def forward(self, input_ids: torch.Tensor, **_: Any) -> Any:
        hidden = self.embed(input_ids).cumsum(1)
        return type("Out", (), {"logits": hidden @ self.embed.weight.T})()


def test_a_model_that_mixes_packed_sequences_is_left_padded() -> None:
    assert not keeps_packed_sequences_apart(_Leaky())


def test_packing_is_chosen_only_where_it_is_cheaper() -> None:
    chosen: list[str] = []
    collate = PackWhenCheaper(
        padded=lambda ex: chosen.append("padded"),
        packed=lambda ex: chosen.append("packed"),
        pair_cost=3 / 3072,
    )
    collate([{"input_ids": [0] * n} for n in (109, 65, 75, 65, 69, 73, 69, 65)])  # the main job's SFT
    collate([{"input_ids": [0] * 700} for _ in range(8)])  # long game prompts of one length
    assert chosen == ["packed", "padded"]
    # SmolLM2-135M's shape: h=576, kv=192, i=1536
    cfg = type(
        "C",
        (),
        {"hidden_size": 576, "num_attention_heads": 9, "num_key_value_heads": 3, "intermediate_size": 1536},
    )
    assert attention_pairs_per_token(cfg()) == pytest.approx(1 / 3072)


def test_padding_free_sft_gives_the_padded_loss(
    tiny: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = TrainConfig(lora=True, epochs=1, batch_size=3, learning_rate=1e-3, seed=0, logging_steps=1)
    kinds: list[bool] = []
    collate = PackWhenCheaper.__call__

    def spy(self: PackWhenCheaper, examples: list[dict[str, Any]]) -> dict[str, Any]:
        out = collate(self, examples)
        kinds.append("position_ids" in out and "attention_mask" not in out)
        return out

    monkeypatch.setattr(PackWhenCheaper, "__call__", spy)
    monkeypatch.setattr(batching, "TRAINED_PAIR_FACTOR", 0.0)  # pack every batch of unequal lengths
    packed = train("sft", f"hf:{tiny}", ROWS, tmp_path / "packed", cfg)
    assert kinds == [True, True]  # both batches ran as one packed row
    import selflab.training.trainers as trainers

    monkeypatch.setattr(trainers, "use_padding_free_batches", lambda trainer: False)
    padded = train("sft", f"hf:{tiny}", ROWS, tmp_path / "padded", cfg)
    assert packed.extra["padding_free"] and not padded.extra["padding_free"]
    assert packed.steps == padded.steps == 2
    assert len(packed.losses) == 2 and packed.losses == pytest.approx(padded.losses, rel=1e-4)
