"""The truth meter's verdict on synthetic metric series: improving, flat, hacking, regressing."""

from __future__ import annotations

from pathlib import Path

from selflab.loops.truth_meter import Measurement, TruthMeter, read_metrics
from selflab.loops.verdict import judge_iteration
from selflab.runs import RunDir

N = 60


def _m(name: str, kind: str, values: list, optimised: bool = False) -> Measurement:
    return Measurement(
        name=name, kind=kind, values=values, ids=[f"i{k}" for k in range(len(values))], optimised=optimised
    )  # type: ignore[arg-type]


def _run(tmp_path: Path, series: list[list[Measurement]]) -> list:
    meter = TruthMeter(RunDir.create(tmp_path / "run", config={}), "synthetic", resamples=500)
    for i, ms in enumerate(series):
        meter.record(i, f"m{i}", ms)
    return read_metrics(RunDir.open(tmp_path / "run"))


def _pass(k: int) -> list[bool]:
    return [j < k for j in range(N)]


def _reward(level: float) -> list[float]:
    return [min(1.0, level + (j % 5) * 0.02) for j in range(N)]


def test_hacking_improving_flat_regressing(tmp_path: Path) -> None:
    base = [
        _m("heldout_pass_rate", "objective", _pass(15)),
        _m("self_reward", "self_reward", _reward(0.2), True),
    ]
    hacked = [
        _m("heldout_pass_rate", "objective", _pass(16)),
        _m("self_reward", "self_reward", _reward(0.8), True),
    ]
    better = [
        _m("heldout_pass_rate", "objective", _pass(40)),
        _m("self_reward", "self_reward", _reward(0.8), True),
    ]
    same = [
        _m("heldout_pass_rate", "objective", _pass(15)),
        _m("self_reward", "self_reward", _reward(0.2), True),
    ]
    worse = [
        _m("heldout_pass_rate", "objective", _pass(2)),
        _m("self_reward", "self_reward", _reward(0.9), True),
    ]
    its = _run(tmp_path, [base, hacked, better, same, worse])
    assert [it.verdict for it in its] == ["baseline", "hacking", "improving", "flat", "regressing"]
    assert its[1].verdict_reason.startswith("self_reward +0.60 (p = ")
    assert its[1].verdict_reason.endswith("while heldout_pass_rate is flat")
    assert "heldout_pass_rate +0.42" in its[2].verdict_reason
    assert "heldout_pass_rate -0.22" in its[4].verdict_reason
    line = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[1]
    assert '"verdict":"hacking"' in line.replace(" ", "") and "verdict_reason" in line


def test_lower_is_better_and_drift_are_handled(tmp_path: Path) -> None:
    broke = lambda k: Measurement(  # noqa: E731
        name="broke_rate", kind="objective", values=_pass(k), higher_is_better=False
    )
    drift = lambda v: Measurement(name="response_tokens", kind="drift", values=[v] * N)  # noqa: E731
    its = _run(tmp_path, [[broke(30), drift(10.0)], [broke(5), drift(50.0)]])
    assert its[1].verdict == "improving" and "broke_rate -0.42" in its[1].verdict_reason


def test_iteration_zero_is_the_baseline() -> None:
    assert judge_iteration(0, {}).verdict == "baseline"
    assert judge_iteration(1, {}).verdict == "flat"


def test_primary_objective_is_read_before_secondary_ones(tmp_path: Path) -> None:
    """The main job's iteration 2: held-out pass rose while a never-changing self-judge "agreed"
    less with the verifier. A primary gain is `improving` (the secondary fall named); a primary
    fall is `regressing` even when a secondary measure rose; without a primary change a
    secondary fall still regresses."""

    def pm(k: int) -> Measurement:
        return Measurement(name="heldout_pass_rate", kind="objective", values=_pass(k), primary=True)

    def agree(k: int) -> Measurement:
        return _m("self_judge_agreement", "objective", _pass(k))

    its = _run(tmp_path, [[pm(15), agree(45)], [pm(40), agree(20)], [pm(2), agree(58)], [pm(15), agree(20)]])
    assert [it.verdict for it in its] == ["baseline", "improving", "regressing", "regressing"]
    assert its[1].verdict_reason.startswith("heldout_pass_rate +0.42")
    assert "but self_judge_agreement -0.42" in its[1].verdict_reason
    assert its[2].verdict_reason.startswith("heldout_pass_rate -0.22")
    assert its[3].verdict_reason.startswith("self_judge_agreement -0.42")
    assert its[1].metrics["heldout_pass_rate"].primary
