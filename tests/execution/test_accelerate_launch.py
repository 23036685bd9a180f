"""Training under `accelerate launch`: 2 gloo DDP processes on CPU on the tiny model, chosen by
`TrainConfig(launcher="accelerate")`, with rank 0 alone writing the checkpoint."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from selflab.errors import SelflabError
from selflab.models.testing import tiny_llama
from selflab.training import TrainConfig, is_checkpoint, train
from selflab.training.launch import accelerate_command

ROWS = [{"prompt": f"Say {w}", "completion": f"{w} there"} for w in ("hi", "bye", "yes", "no")]


def test_sft_with_two_gloo_processes_writes_one_checkpoint(tmp_path: Path) -> None:
    tiny = tiny_llama(tmp_path / "tiny")
    out = tmp_path / "iter-1"
    cfg = TrainConfig(
        launcher="accelerate", num_processes=2, max_steps=2, batch_size=1, learning_rate=1e-2, save="merged"
    )
    result = train("sft", f"hf:{tiny}", ROWS, out, cfg)
    assert result.extra["world_size"] == 2 and result.extra["launcher"] == "accelerate"
    assert result.steps == 2 and result.train_loss is not None
    assert is_checkpoint(out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["iter-1", "tiny"]  # work and job dirs removed
    before, after = load_file(str(tiny / "model.safetensors")), load_file(str(out / "model.safetensors"))
    assert any(not torch.equal(before[k], after[k]) for k in before)


def test_command_line_and_a_missing_config_file(tmp_path: Path) -> None:
    cmd = accelerate_command(TrainConfig(launcher="accelerate", num_processes=2), tmp_path / "job.json")
    assert "--multi_gpu" in cmd and cmd[cmd.index("--num_processes") + 1] == "2"
    assert cmd[-3:] == ["-m", "selflab.training.launch", str(tmp_path / "job.json")]
    single = accelerate_command(TrainConfig(launcher="accelerate", num_processes=1), tmp_path / "j")
    assert "--multi_gpu" not in single
    with pytest.raises(SelflabError, match="does not exist"):
        accelerate_command(TrainConfig(accelerate_config=str(tmp_path / "none.yaml")), tmp_path / "j")
