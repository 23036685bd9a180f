"""Self-refine loop: data rules by hand (fixed/broke/kept/stuck, drops counted), one full iteration
on the tiny llama (every stage, records, loadable checkpoint), and an exact resume after a crash."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from selflab.loops import refinement as rf
from selflab.loops import self_refine as sr
from selflab.loops.base import get_loop, open_run
from selflab.models.testing import tiny_llama
from selflab.runs import RunDir


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_llama(tmp_path_factory.mktemp("tiny") / "model")


def _ref(i: int, first_ok: bool | None, second_ok: bool | None, **kw: object) -> rf.Refinement:
    base: dict = dict(
        task_id=f"t{i}", prompt=f"What is {i} + 1?", first=f"first {i}", second=f"second {i}",
        critique="c", first_ok=first_ok, second_ok=second_ok,
    )  # fmt: skip
    base.update(kw)
    return rf.Refinement.model_validate(base)


def test_outcomes() -> None:
    assert _ref(0, False, True).outcome == "fixed"
    assert _ref(0, True, False).outcome == "broke"
    assert _ref(0, True, True).outcome == "kept"
    assert _ref(0, False, False).outcome == "stuck"
    assert _ref(0, None, True).outcome == "unknown"


def test_build_rules_verifier_selector() -> None:
    refs = [
        _ref(0, False, True),  # fixed -> SELF sft + SCoRe sft + pair
        _ref(1, False, True),  # fixed
        _ref(2, True, False),  # broke -> keep-over-broken pair
        _ref(3, True, True),  # kept -> one transcript (capped)
        _ref(4, True, True),  # kept
        _ref(5, True, True),  # kept
        _ref(6, False, False),  # stuck -> nothing
        _ref(7, False, True, error="boom"),  # generation error -> dropped
        _ref(8, False, True, second="  "),  # empty revision -> dropped
        _ref(9, False, True, second_finish="length"),  # truncated -> dropped
        _ref(10, False, True, second="first 10"),  # "fixed" yet identical text -> dropped
    ]
    d = rf.build_refine_data(refs, "self", "verifier", "both", keep_correct=True, max_kept_fraction=0.5)
    c = d.counts
    assert c["refinements"] == 11
    assert c["dropped_generation_error"] == 1
    assert c["dropped_empty_revision"] == 1
    assert c["dropped_truncated_revision"] == 1
    assert c["dropped_identical_revision"] == 1
    assert c["verdict_better"] == 3 and c["verdict_worse"] == 1 and c["verdict_same"] == 4
    # 2 fixes x (SELF + SCoRe) = 4 examples; kept capped at 50% of the data -> 4 kept allowed, 3 exist
    assert c["dropped_kept_over_cap"] == 0
    assert c["sft_examples"] == len(d.sft) == 7
    assert sorted(e.source for e in d.sft).count("self-refined") == 2
    assert c["pairs"] == len(d.pairs) == 3
    broke = next(p for p in d.pairs if p.source == "keep-over-broken")
    assert broke.chosen == "first 2" and broke.rejected == "second 2"
    fixed = next(p for p in d.pairs if p.id == "t0#0")
    assert fixed.chosen == "second 0" and fixed.rejected == "first 0"
    # the SCoRe prompt is the whole transcript: task, first attempt, critique, revise instruction
    roles = [m.role for m in fixed.prompt]
    assert roles == ["user", "assistant", "user", "assistant", "user"]
    assert fixed.prompt[1].content == "first 0"


def test_kept_cap_and_data_choice() -> None:
    refs = [_ref(0, False, True)] + [_ref(i, True, True) for i in range(1, 6)]
    d = rf.build_refine_data(refs, "retry", data="self", keep_correct=True, max_kept_fraction=0.5)
    # data=self: no transcripts at all, so nothing kept
    assert [e.source for e in d.sft] == ["self-refined"]
    d = rf.build_refine_data(refs, "retry", data="transcript", keep_correct=True, max_kept_fraction=0.5)
    # one fix transcript; kept capped at 1 (50% share); 4 dropped over the cap
    assert d.counts["dropped_kept_over_cap"] == 4 and len(d.sft) == 2
    assert d.sft[0].prompt[-1].content == rf.SCORE_RETRY or d.sft[1].prompt[-1].content == rf.SCORE_RETRY


def test_best_of_n_revisions_give_one_fix_and_one_break_per_first_attempt() -> None:
    """RISE's best-of-N: several revisions of one first attempt -> at most one fix (the first in
    revision order) and one keep-over-broken pair; the extras are counted, never silently lost."""
    refs = [
        _ref(0, False, False, revision=0),  # stuck
        _ref(0, False, True, revision=1, second="fix a"),  # first fix: used
        _ref(0, False, True, revision=2, second="fix b"),  # second fix: extra
        _ref(1, True, False, revision=0, second="broken a"),
        _ref(1, True, False, revision=1, second="broken b"),
        _ref(2, False, True, sample=1, revision=0),  # another first attempt's fix: used
    ]
    d = rf.build_refine_data(refs, "retry", data="transcript")
    assert sorted(e.response for e in d.sft) == ["fix a", "second 2"]
    assert d.counts["dropped_extra_better_revision"] == 1 and d.counts["dropped_extra_worse_revision"] == 1
    assert sorted((p.source, p.rejected) for p in d.pairs) == [
        ("fixed-over-unchanged", "first 0"),
        ("fixed-over-unchanged", "first 2"),
        ("keep-over-broken", "broken a"),
    ]


def test_judge_selector_drops_ties_and_unparsable() -> None:
    refs = [
        _ref(0, None, None, first_score=0.2, second_score=0.8),  # better
        _ref(1, None, None, first_score=0.8, second_score=0.2),  # worse
        _ref(2, None, None, first_score=0.5, second_score=0.5),  # tie
        _ref(3, None, None, first_score=None, second_score=0.5),  # unparsable
    ]
    d = rf.build_refine_data(refs, "self", "judge", "self")
    assert d.counts["verdict_better"] == 1 and d.counts["verdict_worse"] == 1
    assert d.counts["verdict_tie"] == 1 and d.counts["verdict_unparsable"] == 1
    assert len(d.sft) == 1 and len(d.pairs) == 2
    assert d.pairs[0].chosen_score is not None


def test_measures_by_hand() -> None:
    refs = [_ref(0, False, True), _ref(1, True, False), _ref(2, True, True), _ref(3, False, False)]
    ms = {m.name: m for m in sr.refine_measures(refs, with_self_reward=False)}
    assert ms["first_attempt_accuracy"].values == [False, True, True, False]
    assert ms["second_attempt_accuracy"].values == [True, False, True, False]
    assert ms["fixed_rate"].values == [True, False, False, False]
    assert ms["broke_rate"].values == [False, True, False, False]
    assert ms["delta_t1_t2"].values == [1.0, -1.0, 0.0, 0.0]
    assert "self_reward" not in ms


@pytest.fixture()
def lenient_verifier(monkeypatch: pytest.MonkeyPatch) -> None:
    """A random tiny model never answers right; this verifier marks attempts right by text
    parity, deterministically, so every outcome (fixed, broke, ...) occurs."""

    def verify(tasks, refs):  # type: ignore[no-untyped-def]
        return [
            r.model_copy(
                update={
                    "first_ok": len(r.first) % 2 == 0,
                    "second_ok": len(r.second) % 3 != 0,
                    "first_reason": "t",
                }
            )
            for r in refs
        ]

    monkeypatch.setattr(sr, "verify_refinements", verify)


def _config(tiny: Path, **kw: object) -> sr.RefineConfig:
    base = dict(
        model=f"hf:{tiny}", iterations=1, train_tasks=4, eval_tasks=4, attempts_per_task=2,
        max_new_tokens=8, critique_max_new_tokens=8, eval_max_new_tokens=8, judge_max_new_tokens=3,
        drop_truncated=False, train={"lora": True, "max_steps": 1, "batch_size": 2, "learning_rate": 1e-3},
    )  # fmt: skip
    base.update(kw)
    return sr.RefineConfig.model_validate(base)


@pytest.mark.usefixtures("lenient_verifier")
def test_one_full_iteration(tiny: Path, tmp_path: Path) -> None:
    from selflab.models import clear_cache, load_model
    from selflab.models.types import GenerationRequest

    assert get_loop("self-refine") is sr.SelfRefineLoop
    loop = open_run(sr.SelfRefineLoop, tmp_path / "run", _config(tiny), resume=False)
    metrics = loop.run_loop()
    run = RunDir.open(tmp_path / "run")
    done = run.completed_stages()
    assert list(done) == ["iter-0.evaluate"] + [f"iter-1.{s}" for s in sr.SelfRefineLoop.stages]
    refs = run.records("iter-1.verify").read(rf.Refinement)
    assert len(refs) == 4 * 2 and all(r.critique and r.first_ok is not None for r in refs)
    assert done["iter-1.build"].info["examples"] == len(run.records("iter-1.build").read_dicts()) > 0
    assert done["iter-1.train"].info["steps"] == 1
    ckpt = run.path / "checkpoints" / "iter-1"
    clear_cache()
    out = load_model(f"hf:{ckpt}").generate([GenerationRequest.chat("hi", max_new_tokens=3)])
    assert out[0].error is None
    clear_cache()
    m1 = metrics[1].metrics
    want = {"first_attempt_accuracy", "second_attempt_accuracy", "fixed_rate", "broke_rate", "self_reward",
            "response_tokens", "gap_self_minus_objective"}  # fmt: skip
    assert want <= set(m1)
    assert m1["second_attempt_accuracy"].vs_baseline is not None and m1["fixed_rate"].estimate.n == 4


def test_several_revisions_per_attempt_are_sampled_and_numbered(tiny: Path, tmp_path: Path) -> None:
    cfg = _config(tiny, report=False, mode="retry", revisions_per_attempt=3, self_judge_eval=False)
    open_run(sr.SelfRefineLoop, tmp_path / "run", cfg, resume=False).run_loop()
    run = RunDir.open(tmp_path / "run")
    firsts = run.records("iter-1.attempt").read(rf.Refinement)
    refs = run.records("iter-1.revise").read(rf.Refinement)
    assert len(firsts) == 4 * 2 and len({(r.task_id, r.sample, r.revision) for r in refs}) == len(refs)
    per_first: dict[tuple[str, int], list[int]] = {}
    for r in refs:
        per_first.setdefault((r.task_id, r.sample), []).append(r.revision)
    assert len(per_first) == len(firsts)
    assert all(v in ([0], [0, 1, 2]) for v in per_first.values())


def test_a_first_attempt_the_verifier_passes_gets_one_revision() -> None:
    from selflab.tasks import Task

    class _T:
        def __init__(self, tid: str) -> None:
            self.id = tid

        def verify(self, text: str) -> object:
            return type("V", (), {"ok": text == "right"})()

    refs = [_ref(0, None, None, first="right"), _ref(1, None, None, first="wrong")]
    loop = sr.SelfRefineLoop.__new__(sr.SelfRefineLoop)
    loop.config = sr.RefineConfig(revisions_per_attempt=4)
    tasks: list[Task] = [_T("t0"), _T("t1")]  # type: ignore[list-item]
    out = loop._best_of_n(refs, tasks)
    assert [(r.task_id, r.revision) for r in out] == [("t0", 0), ("t1", 0), ("t1", 1), ("t1", 2), ("t1", 3)]


def _snapshot(run_dir: Path) -> dict[str, object]:
    here = str(run_dir.resolve())
    snap: dict[str, object] = {}
    for f in sorted((run_dir / "records").glob("*.jsonl")):
        text = f.read_text().replace(here, "RUN")
        if f.name.endswith(".train.jsonl"):
            text = json.dumps(
                [{k: v for k, v in json.loads(x).items() if k != "seconds"} for x in text.splitlines()]
            )
        snap[f.name] = text
    snap["metrics"] = [x for x in (run_dir / "metrics.jsonl").read_text().replace(here, "RUN").splitlines()
                       if "run_finished" not in x]  # fmt: skip
    snap["data"] = (run_dir / "data" / "iter-1.dpo.parquet").read_bytes()
    return snap


@pytest.mark.usefixtures("lenient_verifier")
def test_resume_after_crash_gives_same_data(tiny: Path, tmp_path: Path) -> None:
    cfg = _config(tiny, report=False, mode="retry", objective="dpo", self_judge_eval=False)
    open_run(sr.SelfRefineLoop, tmp_path / "a", cfg, resume=False).run_loop()
    crashed = open_run(sr.SelfRefineLoop, tmp_path / "b", cfg, resume=False)

    def crash(key: str) -> None:
        if key == "iter-1.verify":
            crashed.stage_log(1, "verify").append({"junk": True})
            raise KeyboardInterrupt("simulated kill")

    crashed.before_stage = crash
    with pytest.raises(KeyboardInterrupt):
        crashed.run_loop()
    open_run(sr.SelfRefineLoop, tmp_path / "b", None, resume=True).run_loop()
    assert _snapshot(tmp_path / "a") == _snapshot(tmp_path / "b")


def test_defaults_are_honest_about_what_they_train() -> None:
    c = sr.RefineConfig()
    assert c.data == "transcript" and not c.keep_correct  # no first-attempt RS, no right->right data
    old = sr.RefineConfig(mode="score", data="score")  # configs written before the rename
    assert (old.mode, old.data) == ("retry", "transcript")
    refs = [_ref(0, False, True), _ref(1, True, True)]
    d = rf.build_refine_data(refs, "self")
    assert [e.source for e in d.sft] == ["two-attempt"]  # the fix, as a transcript; nothing kept
