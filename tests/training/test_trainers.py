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
    cfg = TrainConfig(lora=lora, max_steps=2, learning_rate=1e-2, batch_size=2, save="merged")
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


def test_lora_saves_a_lean_adapter_that_loads_as_hf_spec(tiny: Path, tmp_path: Path) -> None:
    """Default LoRA checkpoints are adapters; `hf:` loads base + adapter merged, the same model as a
    merged checkpoint of the same run; a second iteration trains on the adapter and chains to it."""
    from selflab.models.hf import HFModel

    cfg = TrainConfig(max_steps=2, learning_rate=1e-2, batch_size=2)
    lean, full = tmp_path / "lean", tmp_path / "full"
    train("sft", f"hf:{tiny}", ROWS["sft"], lean, cfg)
    train("sft", f"hf:{tiny}", ROWS["sft"], full, cfg.model_copy(update={"save": "merged"}))
    assert is_checkpoint(lean) and (lean / "adapter_config.json").is_file()
    assert not (lean / "model.safetensors").exists()
    adapter_bytes = (lean / "adapter_model.safetensors").stat().st_size
    assert adapter_bytes < (full / "model.safetensors").stat().st_size / 2
    a, b = HFModel(lean, device="cpu"), HFModel(full, device="cpu")
    ids = torch.tensor([[1, 5, 9, 13, 2]])
    with torch.no_grad():
        torch.testing.assert_close(a.model(ids).logits, b.model(ids).logits, rtol=1e-4, atol=1e-4)
    second = tmp_path / "iter-2"
    train("sft", f"hf:{lean}", ROWS["sft"], second, cfg)
    assert resolve_model_path(f"hf:{second}") == second
    with torch.no_grad():
        assert not torch.equal(HFModel(second, device="cpu").model(ids).logits, a.model(ids).logits)


def test_merged_checkpoint_keeps_the_base_dtype(tmp_path: Path) -> None:
    base = tiny_llama(tmp_path / "bf16")
    from transformers import AutoModelForCausalLM

    AutoModelForCausalLM.from_pretrained(base, dtype=torch.bfloat16).save_pretrained(base)
    out = tmp_path / "merged"
    train("sft", f"hf:{base}", ROWS["sft"], out, TrainConfig(max_steps=1, save="merged"))
    assert {t.dtype for t in _weights(out).values()} == {torch.bfloat16}


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


def test_weighted_sft_masks_the_prompt_and_weights_the_loss(tiny: Path) -> None:
    import torch.nn.functional as F  # noqa: N812
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig

    from selflab.training.datasets import normalise_rows
    from selflab.training.weighted import tokenize_weighted, weighted_sft_trainer

    tok = AutoTokenizer.from_pretrained(tiny)
    rows = normalise_rows("sft", [{**r, "weight": w} for r, w in zip(ROWS["sft"], (2.0, 0.5), strict=True)])
    toks = tokenize_weighted(rows, tok, 512)
    for t in toks:
        n_prompt = sum(1 for x in t["labels"] if x == -100)
        assert 0 < n_prompt < len(t["input_ids"]) and t["labels"][n_prompt:] == t["input_ids"][n_prompt:]
    model = AutoModelForCausalLM.from_pretrained(tiny, dtype=torch.float32)
    args = SFTConfig(output_dir=str(tiny.parent / "w"), report_to=[], use_cpu=True, max_length=512)
    trainer = weighted_sft_trainer(model, args, rows, tok)
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(2)])
    loss = trainer.compute_loss(model, dict(batch))
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1]
    target = batch["labels"][:, 1:]
    nll = F.cross_entropy(logits.transpose(1, 2), target, ignore_index=-100, reduction="none")
    mask = (target != -100).float()
    want = ((nll * mask).sum(1) * torch.tensor([2.0, 0.5])).sum() / mask.sum()
    assert float(loss) == pytest.approx(float(want), rel=1e-5)


def test_weighted_sft_loss_does_not_grow_with_gradient_accumulation(tiny: Path, tmp_path: Path) -> None:
    """One optimiser step over the same two rows, as one batch of 2 or as 2 accumulated batches
    of 1, has one loss (the weighted token mean over both); summing per-micro-batch means made it
    (and the gradient) `grad_accum` times larger."""
    rows = [{**r, "weight": w} for r, w in zip(ROWS["sft"], (2.0, 0.5), strict=True)]
    cfg = TrainConfig(lora=True, max_steps=1, batch_size=2, learning_rate=1e-9, seed=0)
    one = train("sft", f"hf:{tiny}", rows, tmp_path / "one", cfg)
    acc = train(
        "sft", f"hf:{tiny}", rows, tmp_path / "acc", cfg.model_copy(update={"batch_size": 1, "grad_accum": 2})
    )
    assert one.train_loss is not None and acc.train_loss is not None
    assert acc.train_loss == pytest.approx(one.train_loss, rel=1e-4)


def test_weight_zero_is_the_same_as_leaving_the_example_out(tiny: Path, tmp_path: Path) -> None:
    """Adam is invariant to the gradient's scale, so training on [A (w=1), B (w=0)] must land where
    training on [A] alone lands; with B's weight ignored it would not."""
    cfg = TrainConfig(lora=False, max_steps=3, batch_size=2, learning_rate=1e-3, seed=0)
    a, b = ROWS["sft"]
    train("sft", f"hf:{tiny}", [{**a, "weight": 1.0}, {**b, "weight": 0.0}], tmp_path / "w", cfg)
    train(
        "sft", f"hf:{tiny}", [{**a, "weight": 1.0}], tmp_path / "a", cfg.model_copy(update={"batch_size": 1})
    )
    train("sft", f"hf:{tiny}", [{**a, "weight": 1.0}, {**b, "weight": 1.0 + 1e-6}], tmp_path / "ab", cfg)
    w, alone, both = _weights(tmp_path / "w"), _weights(tmp_path / "a"), _weights(tmp_path / "ab")
    name = next(k for k in w if "q_proj" in k)
    assert torch.allclose(w[name], alone[name], atol=1e-5)
    assert not torch.allclose(both[name], alone[name], atol=1e-5)


def test_quiet_runs_drop_the_trainer_log_printer() -> None:
    """Without --verbose (transformers at ERROR) the Trainer's per-step dict printer is removed."""
    from transformers.trainer_callback import PrinterCallback
    from transformers.utils import logging as hf_logging

    from selflab.training.trainers import _quiet_log_printer

    class FakeTrainer:
        def __init__(self) -> None:
            self.callbacks = [PrinterCallback]

        def remove_callback(self, cb: type) -> None:
            self.callbacks.remove(cb)

    before = hf_logging.get_verbosity()
    try:
        hf_logging.set_verbosity_warning()
        loud = FakeTrainer()
        _quiet_log_printer(loud)
        assert loud.callbacks == [PrinterCallback]
        hf_logging.set_verbosity_error()
        quiet = FakeTrainer()
        _quiet_log_printer(quiet)
        assert quiet.callbacks == []
    finally:
        hf_logging.set_verbosity(before)


def test_dpo_nll_term_adds_the_chosen_answers_loss(tiny: Path, tmp_path: Path) -> None:
    """`dpo_sft_weight` (RPO) adds the chosen answer's NLL to the preference loss: the first step's
    loss (same weights, same batch) grows by that weight times a positive NLL; LD-DPO is accepted."""
    cfg = TrainConfig(max_steps=1, learning_rate=1e-3, batch_size=2, logging_steps=1)
    plain = train("dpo", f"hf:{tiny}", ROWS["dpo"], tmp_path / "plain", cfg)
    rpo = train(
        "dpo", f"hf:{tiny}", ROWS["dpo"], tmp_path / "rpo", cfg.model_copy(update={"dpo_sft_weight": 1.0})
    )
    assert plain.losses and rpo.losses
    assert rpo.losses[0] > plain.losses[0] + 1.0  # a random tiny model's NLL is several nats
    ld = train("dpo", f"hf:{tiny}", ROWS["dpo"], tmp_path / "ld", cfg.model_copy(update={"ld_alpha": 0.5}))
    assert ld.steps == 1


def test_lora_layers_puts_adapters_on_the_top_layers_only(tiny: Path, tmp_path: Path) -> None:
    """`lora_layers: 1` trains adapters on the last transformer layer and nothing below it."""
    import re

    from transformers import AutoConfig

    layers = AutoConfig.from_pretrained(tiny).num_hidden_layers
    cfg = TrainConfig(max_steps=1, learning_rate=1e-3, batch_size=2, lora_layers=1)
    train("sft", f"hf:{tiny}", ROWS["sft"], tmp_path / "top", cfg)
    keys = load_file(str(tmp_path / "top" / "adapter_model.safetensors")).keys()
    indices = {int(m.group(1)) for k in keys if (m := re.search(r"\.layers\.(\d+)\.", k))}
    assert keys and indices == {layers - 1}
