"""Truth-meter statistics against hand-computed values."""

from __future__ import annotations

import math

from selflab.loops.stats import bootstrap_ci, mcnemar_exact, paired_compare
from selflab.loops.truth_meter import GAP_NAME, Measurement, TruthMeter, read_metrics
from selflab.runs import RunDir


def test_bootstrap_ci_brackets_mean_and_skips_missing() -> None:
    est = bootstrap_ci([1, 0, 1, 1, None, 0, 1, 1], seed=3)
    assert est.n == 7 and math.isclose(est.mean, 5 / 7)
    assert est.lo <= est.mean <= est.hi and est.lo > 0.2 and est.hi <= 1.0
    assert bootstrap_ci([None]).mean is None


def test_mcnemar_exact_hand_values() -> None:
    # 6 discordant pairs, all fail->pass: p = 2 * 0.5**6
    assert math.isclose(mcnemar_exact([False] * 6 + [True] * 4, [True] * 10), 2 * 0.5**6)
    # b=1, c=5: p = 2 * (C(6,0)+C(6,1)) / 64 = 14/64
    before = [True] + [False] * 5
    after = [False] + [True] * 5
    assert math.isclose(mcnemar_exact(before, after), 14 / 64)
    assert mcnemar_exact([True, False], [True, False]) == 1.0


def test_paired_compare_binary_uses_mcnemar() -> None:
    t = paired_compare([False] * 10 + [True] * 10, [True] * 8 + [False] * 2 + [True] * 10)
    assert t.test == "mcnemar-exact" and t.improved == 8 and t.worsened == 0
    assert math.isclose(t.delta.mean, 0.4) and t.p_value < 0.01
    s = paired_compare([1.0, 2.0, None], [2.0, 2.0, 5.0])
    assert s.test == "wilcoxon" and s.delta.n == 2


def test_meter_records_gap_and_tests_against_baseline(tmp_path) -> None:  # type: ignore[no-untyped-def]
    run = RunDir.create(tmp_path / "r", config={}, seed=0)
    meter = TruthMeter(run, "demo", resamples=500)
    obj0 = Measurement(name="acc", kind="objective", values=[False] * 20)
    sr0 = Measurement(name="self", kind="self_reward", values=[0.5] * 20)
    meter.record(0, "m0", [obj0, sr0], gap=("self", "acc"))
    obj1 = Measurement(name="acc", kind="objective", values=[True] * 12 + [False] * 8)
    sr1 = Measurement(name="self", kind="self_reward", values=[0.5] * 19 + [None])
    it1 = meter.record(1, "m1", [obj1, sr1], gap=("self", "acc"))
    acc = it1.metrics["acc"]
    assert acc.vs_baseline is not None and acc.vs_baseline.improved == 12
    assert math.isclose(acc.vs_baseline.p_value, 2 * 0.5**12)
    gap = it1.metrics[GAP_NAME]
    assert gap.missing == 1 and math.isclose(gap.estimate.mean, (0.5 * 19 - 12) / 19)
    assert [m.iteration for m in read_metrics(run)] == [0, 1]
