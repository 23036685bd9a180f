"""The stepwise loop on the tiny llama: every stage runs, step pairs share their prefix and
diverge at the first error, the truth meter records held-out accuracy next to the self-reward,
and a run killed between stages resumes to the same records."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from selflab.loops import stepwise as sw
from selflab.loops.base import get_loop, open_run
from selflab.runs import RunDir
from selflab.training import PreferencePair


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from selflab.models.testing import tiny_llama

    return tiny_llama(tmp_path_factory.mktemp("tiny") / "model")


def _config(tiny: Path, **kw: object) -> sw.StepwiseConfig:
    base = dict(
        model=f"hf:{tiny}",
        iterations=1,
        families=["arithmetic", "blocks"],
        train_problems=2,
        eval_problems=2,
        bench_items=2,
        samples_per_problem=2,
        rollouts=1,
        judge_examples=4,
        max_new_tokens=12,
        eval_max_new_tokens=12,
        judge_max_steps=2,
        train={"lora": True, "max_steps": 1, "batch_size": 2, "learning_rate": 1e-3},
        report=False,
    )
    base.update(kw)
    return sw.StepwiseConfig.model_validate(base)


def test_registered() -> None:
    assert get_loop("stepwise") is sw.StepwiseLoop


@pytest.mark.parametrize("objective", ["dpo", "kto"])
def test_one_iteration(tiny: Path, tmp_path: Path, objective: str) -> None:
    loop = open_run(sw.StepwiseLoop, tmp_path / "run", _config(tiny, objective=objective), resume=False)
    metrics = loop.run_loop()
    run = RunDir.open(tmp_path / "run")
    done = run.completed_stages()
    assert list(done) == ["iter-0.evaluate"] + [f"iter-1.{s}" for s in sw.StepwiseLoop.stages]
    # a random model's text has no correct steps: every solution has a first error, and with the
    # code fallback each gets a chosen continuation
    built = run.records("iter-1.build").read(PreferencePair)
    step_pairs = [p for p in built if p.source.startswith("step-")]
    assert step_pairs and done["iter-1.build"].info["step_pairs"] == len(step_pairs)
    for p in step_pairs:
        a, b = p.chosen.split("\n"), p.rejected.split("\n")
        k = int(p.id.rsplit("@", 1)[1])
        assert a[:k] == b[:k] and a[k] != b[k]
    judge = [p for p in built if p.source == "judge-step"]
    assert all({p.chosen, p.rejected} == {"Verdict: correct", "Verdict: incorrect"} for p in judge)
    assert (run.path / "data" / f"iter-1.{objective}.parquet").is_file()
    assert (run.path / "checkpoints" / "iter-1" / "selflab_checkpoint.json").is_file()
    m1 = metrics[1].metrics
    assert {"heldout_accuracy", "judge_first_error_acc", "self_reward", "gap_self_minus_objective"} <= set(m1)
    assert m1["heldout_accuracy"].estimate.n == 4 and m1["heldout_accuracy"].vs_baseline is not None


def _snapshot(run_dir: Path) -> dict[str, object]:
    here = str(run_dir.resolve())
    snap: dict[str, object] = {}
    for f in sorted((run_dir / "records").glob("*.jsonl")):
        text = f.read_text().replace(here, "RUN").replace(str(run_dir), "RUN")
        if f.name.endswith(".train.jsonl"):
            snap[f.name] = [
                {k: v for k, v in json.loads(x).items() if k != "seconds"} for x in text.splitlines()
            ]
        else:
            snap[f.name] = text
    lines = (run_dir / "metrics.jsonl").read_text().replace(here, "RUN").splitlines()
    timing = re.compile(r'"([\w.]*_s|seconds)":\s*[-0-9.e]+')  # wall-clock fields differ between runs
    snap["metrics"] = [timing.sub('"t": 0', x) for x in lines if "run_finished" not in x]
    snap["parquet"] = (run_dir / "data" / "iter-1.dpo.parquet").read_bytes()
    return snap


def test_resume_after_a_kill_gives_the_same_records(tiny: Path, tmp_path: Path) -> None:
    cfg = _config(tiny)
    open_run(sw.StepwiseLoop, tmp_path / "a", cfg, resume=False).run_loop()
    crashed = open_run(sw.StepwiseLoop, tmp_path / "b", cfg, resume=False)

    def kill(key: str) -> None:
        if key == "iter-1.rollout":
            crashed.stage_log(1, "rollout").append({"junk": True})
            raise KeyboardInterrupt("simulated kill")

    crashed.before_stage = kill
    with pytest.raises(KeyboardInterrupt):
        crashed.run_loop()
    open_run(sw.StepwiseLoop, tmp_path / "b", None, resume=True).run_loop()
    assert _snapshot(tmp_path / "a") == _snapshot(tmp_path / "b")
    stages = list(RunDir.open(tmp_path / "b").completed_stages())
    assert len(stages) == len(set(stages)) == 7
