"""The main-job loop on the real embedded model with a very small budget (a few minutes on CPU)."""

from __future__ import annotations

from pathlib import Path

import pytest

from selflab.loops.base import open_run
from selflab.loops.verified_sft import VerifiedSFTConfig, VerifiedSFTLoop
from selflab.runs import RunDir


@pytest.mark.integration
def test_verified_sft_tiny_budget_on_embedded_model(tmp_path: Path) -> None:
    cfg = VerifiedSFTConfig.model_validate(
        dict(
            model="smollm2-135m",
            iterations=1,
            train_tasks=6,
            eval_tasks=6,
            control_tasks=2,
            samples_per_task=2,
            max_new_tokens=40,
            eval_max_new_tokens=40,
            judge_train_answers=False,
            drop_truncated=False,
            train={"lora": True, "max_steps": 2, "batch_size": 2},
        )
    )
    loop = open_run(VerifiedSFTLoop, tmp_path / "run", cfg, resume=False)
    metrics = loop.run_loop()
    run = RunDir.open(tmp_path / "run")
    assert len(run.completed_stages()) == 1 + len(VerifiedSFTLoop.stages)
    answers = run.records("iter-1.verify").read_dicts()
    assert len(answers) == 12 and all(a["response"] is not None for a in answers)
    # the real model writes real text, and the verifier gives a real verdict with a reason
    assert sum(len(a["response"]) for a in answers) > 100 and all(a["reason"] for a in answers)
    assert (run.path / "checkpoints" / "iter-1" / "selflab_checkpoint.json").is_file()
    m = metrics[-1].metrics
    assert m["heldout_pass_rate"].estimate.n == 6
    # the embedded model's self-judge parses at least sometimes in direct mode
    assert m["self_reward"].estimate.n + m["self_reward"].missing == 6
    assert (run.path / "report.html").is_file()
