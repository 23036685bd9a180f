"""One full verified-sft iteration on the tiny llama: every stage runs, records and a loadable
checkpoint are written; and a run killed between stages resumes to the same final data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from selflab.loops import measures
from selflab.loops import verified_sft as vs
from selflab.loops.base import get_loop, list_loops, open_run
from selflab.loops.truth_meter import read_metrics
from selflab.models.testing import tiny_llama
from selflab.models.types import GenerationRequest
from selflab.runs import RunDir


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_llama(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(autouse=True)
def lenient_verifier(monkeypatch: pytest.MonkeyPatch) -> None:
    """A random tiny model never satisfies a real constraint, so training would get no data. The
    verifier is a pluggable stage: here it accepts even-numbered samples and answers that contain
    a vowel, deterministically, so every later stage has work to do."""

    def verify(tasks, answers):  # type: ignore[no-untyped-def]
        out = []
        for a in answers:
            ok = a.sample % 2 == 0 and any(ch in a.response for ch in "aeiou")
            out.append(a.model_copy(update={"verified": ok, "reason": "test verifier"}))
        return out

    monkeypatch.setattr(vs, "verify_answers", verify)


def _config(tiny: Path, **kw: object) -> vs.VerifiedSFTConfig:
    base = dict(
        model=f"hf:{tiny}",
        iterations=1,
        train_tasks=3,
        eval_tasks=4,
        control_tasks=2,
        samples_per_task=2,
        max_new_tokens=8,
        eval_max_new_tokens=8,
        judge_max_new_tokens=3,
        train={"lora": True, "max_steps": 2, "batch_size": 2, "learning_rate": 1e-3},
        report=True,
        drop_truncated=False,
    )
    base.update(kw)
    return vs.VerifiedSFTConfig.model_validate(base)


def test_control_family_may_not_be_the_trained_family() -> None:
    """Arithmetic trained at 0.3 and controlled at 0.5 share a third of the control items (and
    "untrained" would be false): refused, naming the fix."""
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="set control_family to another family"):
        vs.VerifiedSFTConfig(task_family="arithmetic")
    ok = vs.VerifiedSFTConfig(task_family="arithmetic", control_family="word_problems")
    assert ok.control_family == "word_problems"
    assert vs.VerifiedSFTConfig(task_family="arithmetic", control_family=None).control_family is None


def test_registry_lists_the_loop() -> None:
    assert "verified-sft" in list_loops()
    assert get_loop("verified-sft") is vs.VerifiedSFTLoop


def test_one_full_iteration(tiny: Path, tmp_path: Path) -> None:
    from selflab.models import clear_cache, load_model

    loop = open_run(vs.VerifiedSFTLoop, tmp_path / "run", _config(tiny), resume=False)
    metrics = loop.run_loop()
    run = RunDir.open(tmp_path / "run")
    done = run.completed_stages()
    assert list(done) == ["iter-0.evaluate"] + [f"iter-1.{s}" for s in vs.VerifiedSFTLoop.stages]
    gens = run.records("iter-1.generate").read(measures.Answer)
    assert len(gens) == 3 * 2
    built = run.records("iter-1.build").read_dicts()
    assert built and done["iter-1.build"].info["examples"] == len(built)
    assert (run.path / "data" / "iter-1.sft.parquet").is_file()
    assert done["iter-1.train"].info["steps"] == 2
    ckpt = run.path / "checkpoints" / "iter-1"
    assert (ckpt / "selflab_checkpoint.json").is_file()
    clear_cache()
    out = load_model(f"hf:{ckpt}").generate([GenerationRequest.chat("hello", max_new_tokens=4)])
    assert out[0].error is None
    clear_cache()
    # truth meter: both iterations, self-reward and objective side by side, tested against iteration 0
    assert [m.iteration for m in metrics] == [0, 1]
    m1 = metrics[1].metrics
    assert {"heldout_pass_rate", "self_reward", "response_tokens", "gap_self_minus_objective"} <= set(m1)
    assert m1["heldout_pass_rate"].vs_baseline is not None
    assert m1["heldout_pass_rate"].estimate.n == 4
    assert metrics == read_metrics(run)
    assert (run.path / "report.html").read_text().count("<img") >= 2


def _data_snapshot(run_dir: Path) -> dict[str, object]:
    """Every record and metric line, with the run's own path and wall-clock times taken out."""
    here = str(run_dir.resolve())

    def read(f: Path) -> str:
        return f.read_text().replace(here, "RUN").replace(str(run_dir), "RUN")

    snap: dict[str, object] = {}
    for f in sorted((run_dir / "records").glob("*.jsonl")):
        if f.name.endswith(".train.jsonl"):
            rows = [json.loads(x) for x in read(f).splitlines()]
            snap[f.name] = [{k: v for k, v in r.items() if k != "seconds"} for r in rows]
        else:
            snap[f.name] = read(f)
    snap["metrics"] = [x for x in read(run_dir / "metrics.jsonl").splitlines() if '"run_finished"' not in x]
    snap["parquet"] = (run_dir / "data" / "iter-1.sft.parquet").read_bytes()
    return snap


def test_resume_after_crash_gives_same_data(tiny: Path, tmp_path: Path) -> None:
    cfg = _config(tiny, report=False)
    full = open_run(vs.VerifiedSFTLoop, tmp_path / "a", cfg, resume=False)
    full.run_loop()

    crashed = open_run(vs.VerifiedSFTLoop, tmp_path / "b", cfg, resume=False)

    def crash(key: str) -> None:
        if key == "iter-1.build":
            # a half-written output of the interrupted stage must not survive the resume
            crashed.stage_log(1, "build").append({"junk": True})
            raise KeyboardInterrupt("simulated kill")

    crashed.before_stage = crash
    with pytest.raises(KeyboardInterrupt):
        crashed.run_loop()
    assert not RunDir.open(tmp_path / "b").is_complete("iter-1.build")

    resumed = open_run(vs.VerifiedSFTLoop, tmp_path / "b", None, resume=True)
    resumed.run_loop()
    assert _data_snapshot(tmp_path / "a") == _data_snapshot(tmp_path / "b")
    stages = [s for s in RunDir.open(tmp_path / "b").completed_stages()]
    assert len(stages) == len(set(stages)) == 7


def test_resume_refuses_a_different_config(tiny: Path, tmp_path: Path) -> None:
    from selflab.errors import ConfigError

    cfg = _config(tiny, iterations=1, report=False)
    open_run(vs.VerifiedSFTLoop, tmp_path / "c", cfg, resume=False)
    with pytest.raises(ConfigError, match="differs"):
        open_run(vs.VerifiedSFTLoop, tmp_path / "c", _config(tiny, iterations=2), resume=True)
