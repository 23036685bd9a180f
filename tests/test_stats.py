"""selflab.stats against hand-computed values and scipy's own results."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from selflab import stats
from selflab.stats import Estimate


def test_proportion_is_wilson_interval() -> None:
    est = stats.proportion(50, 100)
    z = 1.959963984540054
    half = z * math.sqrt(0.25 / 100 + z * z / 40000) / (1 + z * z / 100)
    assert est.value == 0.5 and est.n == 100 and est.method == "wilson"
    assert est.low == pytest.approx(0.5 - half) and est.high == pytest.approx(0.5 + half)
    assert stats.proportion(0, 0).value is None and stats.wilson(0, 0) == (0.0, 1.0)
    assert stats.proportion(3, 3).high == pytest.approx(1.0)


def test_bootstrap_is_seeded_and_drops_undefined_resamples() -> None:
    x = [1, 0, 1, 1, 0, 1, 1, 0, 1, 1]
    a = stats.bootstrap(lambda v: float(np.mean(v)), x, seed=1, n_resamples=300)
    b = stats.bootstrap(lambda v: float(np.mean(v)), x, seed=1, n_resamples=300)
    assert a == b and a.low is not None and a.low <= 0.7 <= a.high

    # a statistic undefined when one class is left (None) still gets an interval
    def only_if_mixed(v: np.ndarray) -> float | None:
        return None if len(set(v.tolist())) < 2 else float(np.mean(v))

    d = stats.bootstrap(lambda v: only_if_mixed(v), np.array([0.0, 1.0, 0.0, 1.0]), seed=0, n_resamples=200)
    assert d.value == 0.5 and d.has_interval


def test_bootstrap_paired_string_columns() -> None:
    v = ["A", "B", "A", "tie", "A", "B"]
    t = ["A", "B", "B", "A", "A", "B"]
    est = stats.bootstrap(lambda a, b: float(np.mean(a == b)), v, t, seed=0, n_resamples=200)
    assert est.value == pytest.approx(4 / 6) and est.n == 6


def test_mean_skips_none_and_small_samples() -> None:
    est = stats.mean([1, 0, 1, 1, None, 0, 1, 1], seed=3)
    assert est.n == 7 and est.value == pytest.approx(5 / 7) and est.low <= est.value <= est.high
    assert stats.mean([None]).value is None
    one = stats.mean([0.4])
    assert one.value == 0.4 and not one.has_interval and one.fmt() == "0.400 (n=1)"


def test_mcnemar_and_sign_test_hand_values() -> None:
    assert stats.mcnemar([False] * 6 + [True] * 4, [True] * 10) == pytest.approx(2 * 0.5**6)
    assert stats.mcnemar([True] + [False] * 5, [False] + [True] * 5) == pytest.approx(14 / 64)
    assert stats.mcnemar([True, False], [True, False]) == 1.0
    assert stats.sign_test([1, 1, 1, 1, 0, -1]) == pytest.approx(2 * 6 / 32)


def test_paired_compare_chooses_test() -> None:
    t = stats.paired_compare([False] * 10 + [True] * 10, [True] * 8 + [False] * 2 + [True] * 10)
    assert t.test == "mcnemar-exact" and t.improved == 8 and t.worsened == 0
    assert t.delta.value == pytest.approx(0.4) and t.p_value < 0.01
    s = stats.paired_compare([1.0, 2.0, 3.0, 4.0, None], [2.0, 2.5, 4.0, 6.0, 1.0])
    assert s.test == "wilcoxon" and s.delta.n == 4 and s.improved == 4
    tt = stats.paired_compare([1.0, 2.0, 3.0, 4.0], [2.0, 2.5, 4.0, 6.0], test="ttest")
    assert tt.test == "ttest-rel" and 0 < tt.p_value < 0.1
    assert stats.paired_compare([None], [1.0]).test == "none"


def test_estimate_round_trips_and_reads_old_spellings() -> None:
    est = stats.proportion(7, 10)
    assert Estimate.model_validate(json.loads(est.model_dump_json())) == est
    old = Estimate.model_validate({"mean": 0.5, "lo": 0.4, "hi": 0.6, "n": 3})
    assert (old.value, old.low, old.high, old.lo, old.ci_high) == (0.5, 0.4, 0.6, 0.4, 0.6)
    assert Estimate(0.5, 0.4, 0.6, 3) == Estimate(value=0.5, low=0.4, high=0.6, n=3)
    assert Estimate(mean=0.5, lo=0.1, hi=0.9).fmt(2) == "0.50 [0.10, 0.90] (n=0)"
    assert Estimate(None).fmt() == "n/a"
