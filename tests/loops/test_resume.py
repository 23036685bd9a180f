"""Resume, for every loop: a run killed between two stages, resumed, then killed again in the middle
of a stage (after it wrote part of its output), and resumed again, ends with exactly the records,
data and metrics of an uninterrupted run."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from selflab.loops import game_selfplay as gs
from selflab.loops import generated_data as gd
from selflab.loops import generated_instructions as gi
from selflab.loops import judge_distillation as jd
from selflab.loops import meta_rewarding as mr
from selflab.loops import self_refine as rf
from selflab.loops import self_rewarding as sr
from selflab.loops import spin
from selflab.loops import verified_sft as vs
from selflab.loops.base import Loop, open_run
from selflab.models.testing import tiny_llama

TRAIN = {"lora": True, "max_steps": 1, "batch_size": 2, "learning_rate": 1e-3}
JUDGED = dict(eval_tasks=2, control_tasks=1, eval_max_new_tokens=8, judge_max_new_tokens=2, bench_items=1)


def _configs(tiny: Path) -> dict[str, tuple[type[Loop], dict[str, Any], str, str]]:
    """loop -> (class, config, stage killed before, stage killed inside)."""
    m = f"hf:{tiny}"
    return {
        "verified-sft": (
            vs.VerifiedSFTLoop,
            dict(model=m, train_tasks=2, eval_tasks=2, control_tasks=1, samples_per_task=2, max_new_tokens=8,
                 eval_max_new_tokens=8, judge_max_new_tokens=2, train=TRAIN),
            "judge", "evaluate",
        ),
        "self-rewarding": (
            sr.SelfRewardingLoop,
            dict(model=m, seed_prompts=2, new_prompts=1, samples_per_prompt=2, max_new_tokens=8,
                 prompt_max_new_tokens=8, judge_samples=2, judge_reasoning=False, train=TRAIN, **JUDGED),
            "generate", "judge",
        ),
        "meta-rewarding": (
            mr.MetaRewardingLoop,
            dict(model=m, seed_prompts=2, new_prompts=0, samples_per_prompt=2, max_new_tokens=8,
                 judge_samples=2, train=TRAIN, **{**JUDGED, "judge_max_new_tokens": 6}),
            "meta_judge", "build",
        ),
        "spin": (
            spin.SPINLoop,
            dict(model=m, train_prompts=3, heldout_references=2, max_new_tokens=8, temperature=2.0, top_p=1.0,
                 train=TRAIN, **JUDGED),
            "build", "train",
        ),
        "judge-distillation": (
            jd.JudgeDistillationLoop,
            dict(model=m, iterations=1, train_items=1, jury="jury:personas:2", sft_train=TRAIN, dpo_train=TRAIN,
                 **JUDGED),
            "sample", "train",
        ),
        "self-refine": (
            rf.SelfRefineLoop,
            dict(model=m, train_tasks=2, eval_tasks=2, attempts_per_task=1, max_new_tokens=8,
                 critique_max_new_tokens=8, eval_max_new_tokens=8, judge_max_new_tokens=2, train=TRAIN),
            "revise", "verify",
        ),
        "generated-data": (
            gd.GeneratedDataLoop,
            dict(model=m, proposals=3, samples=2, max_new_tokens=8, propose_max_new_tokens=8, eval_tasks=2,
                 eval_max_new_tokens=8, consistency_samples=2, train=TRAIN),
            "solve", "vote",
        ),
        "generated-instructions": (
            gi.GeneratedInstructionsLoop,
            dict(model=m, requests=3, samples=2, max_new_tokens=8, propose_max_new_tokens=8, eval_tasks=2,
                 control_tasks=1, eval_max_new_tokens=8, train=TRAIN),
            "solve", "verify",
        ),
        "game-selfplay": (
            gs.GameSelfPlayLoop,
            dict(model=m, episodes=2, opponents=["self", "random"], eval_opponents=["scripted"], eval_episodes=2,
                 max_new_tokens=4, context_tokens=768, self_assess=False,
                 train={**TRAIN, "max_length": 800}),
            "build", "train",
        ),
    }  # fmt: skip


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_llama(tmp_path_factory.mktemp("tiny") / "model")


_TIMING = re.compile(r'"(\w*_s|seconds)":\s*[-0-9.e]+')  # wall-clock fields differ between runs


def _snapshot(run_dir: Path) -> dict[str, object]:
    here = str(run_dir.resolve())
    snap: dict[str, object] = {}
    for f in sorted((run_dir / "records").glob("*.jsonl")):
        snap[f.name] = _TIMING.sub('"t": 0', f.read_text().replace(here, "RUN"))
    snap["metrics"] = [
        _TIMING.sub('"t": 0', x)
        for x in (run_dir / "metrics.jsonl").read_text().replace(here, "RUN").splitlines()
        if "run_finished" not in x
    ]
    snap["data"] = {p.name: p.read_bytes() for p in sorted((run_dir / "data").glob("*.parquet"))}
    return snap


@pytest.mark.parametrize(
    "name",
    ["verified-sft", "self-rewarding", "meta-rewarding", "spin", "judge-distillation", "self-refine",
     "generated-data", "generated-instructions", "game-selfplay"],
)  # fmt: skip
def test_kill_between_and_within_stages_then_resume(
    name: str, tiny: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cls, raw, between, within = _configs(tiny)[name]
    if cls is gs.GameSelfPlayLoop:
        from tests.loops.test_game_selfplay import _LegalLLM

        monkeypatch.setattr(gs, "LLMAgent", _LegalLLM)
    cfg = cls.Config.model_validate({"iterations": 1, "report": False, **raw})
    open_run(cls, tmp_path / "a", cfg, resume=False).run_loop()

    first = open_run(cls, tmp_path / "b", cfg, resume=False)

    def kill_between(key: str) -> None:
        if key == f"iter-1.{between}":
            raise KeyboardInterrupt("killed between stages")

    first.before_stage = kill_between
    with pytest.raises(KeyboardInterrupt):
        first.run_loop()

    second = open_run(cls, tmp_path / "b", None, resume=True)
    real = getattr(second, f"stage_{within}")

    def killed_inside(ctx: Any) -> None:
        if ctx.iteration == 1:
            ctx.out.append({"partial": "output of a killed attempt"})
            raise KeyboardInterrupt("killed inside a stage")
        real(ctx)

    setattr(second, f"stage_{within}", killed_inside)
    with pytest.raises(KeyboardInterrupt):
        second.run_loop()

    open_run(cls, tmp_path / "b", None, resume=True).run_loop()
    a, b = _snapshot(tmp_path / "a"), _snapshot(tmp_path / "b")
    assert a.keys() == b.keys()
    for k in a:
        assert a[k] == b[k], k
    assert json.loads(b["metrics"][-1])["iteration"] == 1  # type: ignore[index]
