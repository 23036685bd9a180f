"""The atomic experiment on the real embedded model (two cases, single proposer, short answers):
the machinery runs end to end, every proposal is parsed or recorded as unparsable, and success
is computed by code for every case."""

from __future__ import annotations

from pathlib import Path

import pytest

from selflab.loops.base import open_run
from selflab.regulate.atomic import AtomicConfig, AtomicLoop
from selflab.runs import RunDir

pytestmark = pytest.mark.integration


def test_atomic_single_on_embedded_model(tmp_path: Path) -> None:
    cfg = AtomicConfig(
        model="smollm2-135m",
        cases=2,
        strategies=["single"],
        answer_max_new_tokens=16,
        proposal_max_new_tokens=48,
        judge=True,
        report=False,
    )
    open_run(AtomicLoop, tmp_path / "run", cfg, resume=False).run_loop()
    run = RunDir.open(tmp_path / "run")
    decisions = run.records("iter-1.single").read_dicts()
    assert len(decisions) == 2
    for d in decisions:
        p = d["history"][0]
        assert (p["patch"] is None) == (p["error"] is not None)
    scores = run.records("iter-1.score").read_dicts()
    assert len(scores) == 2 and all(s["success"] in (True, False) for s in scores)
    baseline = run.records("iter-0.baseline").read_dicts()
    assert all(r["refused"] in (True, False, None) for r in baseline)
