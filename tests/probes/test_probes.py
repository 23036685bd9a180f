"""Probes find a planted direction, fail on shuffled labels; metrics match hand computations."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from selflab.errors import SelflabError
from selflab.probes.metrics import accuracy_ci, auc, auc_ci, mean_ci
from selflab.probes.models import PROBE_KINDS, make_probe


def _planted(n: int, d: int = 64, seed: int = 0, shuffle: bool = False, nonlinear: bool = False):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)) * rng.uniform(0.5, 20, size=d)  # very different scales per dim
    y = rng.integers(0, 2, size=n)
    if nonlinear:  # XOR of two directions: no linear probe can read it
        y = ((X[:, 0] > 0) ^ (X[:, 1] > 0)).astype(int)
    else:
        direction = rng.normal(size=d)
        X = X + np.outer(2 * y - 1, direction) * 3.0
    if shuffle:
        y = rng.permutation(y)
    return X, y


@pytest.mark.parametrize("kind", PROBE_KINDS)
def test_planted_linear_direction_is_found(kind: str) -> None:
    X, y = _planted(400)
    probe = make_probe(kind, seed=0).fit(X[:300], y[:300])
    s = probe.score(X[300:])
    assert s.shape == (100,) and np.all((s >= 0) & (s <= 1))
    assert auc(s, y[300:]) > 0.97
    assert ((s >= 0.5) == y[300:]).mean() > 0.9


@pytest.mark.parametrize("kind", PROBE_KINDS)
def test_shuffled_labels_give_chance(kind: str) -> None:
    X, y = _planted(600, shuffle=True, seed=1)
    probe = make_probe(kind, seed=0).fit(X[:400], y[:400])
    assert abs(auc(probe.score(X[400:]), y[400:]) - 0.5) < 0.12


def test_mlp_reads_a_nonlinear_signal_linear_probes_cannot() -> None:
    X, y = _planted(800, d=8, nonlinear=True, seed=2)
    X[:, :2] /= X[:, :2].std(axis=0)
    res = {k: auc(make_probe(k).fit(X[:600], y[:600]).score(X[600:]), y[600:]) for k in PROBE_KINDS}
    assert res["mlp"] > 0.85
    assert res["logistic"] < 0.65 and res["mean_diff"] < 0.65


def test_single_class_is_refused() -> None:
    with pytest.raises(SelflabError):
        make_probe("logistic").fit(np.zeros((10, 3)), np.ones(10))
    with pytest.raises(SelflabError):
        make_probe("svm")


def test_auc_matches_hand_and_sklearn() -> None:
    # positives 0.9, 0.4; negatives 0.5, 0.4, 0.1 -> pairs won: (0.9: 3), (0.4: 1 + tie 0.5) = 4.5 / 6
    s, y = [0.9, 0.4, 0.5, 0.4, 0.1], [1, 1, 0, 0, 0]
    assert auc(s, y) == pytest.approx(4.5 / 6)
    rng = np.random.default_rng(0)
    s2, y2 = rng.integers(0, 10, 200).astype(float), rng.integers(0, 2, 200)
    assert auc(s2, y2) == pytest.approx(roc_auc_score(y2, s2))


def test_bootstrap_intervals() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 300)
    s = y + rng.normal(scale=1.0, size=300)
    m = auc_ci(s, y, n_boot=500)
    assert m.lo < m.value < m.hi and 0.0 < m.hi - m.lo < 0.2
    # clustering: duplicated rows in one group must widen the interval vs treating them as independent
    groups = [str(i // 4) for i in range(300)]
    s_dup, y_dup = np.repeat(s[:75], 4), np.repeat(y[:75], 4)
    wide = auc_ci(s_dup, y_dup, groups, n_boot=500)
    narrow = auc_ci(s_dup, y_dup, None, n_boot=500)
    assert (wide.hi - wide.lo) > 1.5 * (narrow.hi - narrow.lo)
    acc = accuracy_ci([0.9, 0.1, 0.8, 0.2], [1, 0, 0, 0], n_boot=200)
    assert acc.value == pytest.approx(0.75)
    assert mean_ci([1, 0, 1, 1]).value == pytest.approx(0.75)


@pytest.mark.parametrize("kind", PROBE_KINDS)
def test_one_example_of_a_class_is_a_clear_error(kind: str) -> None:
    """One correct answer among twenty (a weak model in `guided`) used to crash inside sklearn's
    cross-validation with a bare ValueError; it must be a SelflabError naming the fix."""
    X = np.random.default_rng(0).normal(size=(20, 5))
    y = np.array([1] + [0] * 19)
    with pytest.raises(SelflabError, match="only 1 example"):
        make_probe(kind).fit(X, y)
    make_probe(kind).fit(X, np.array([1, 1] + [0] * 18))  # two of each class are enough


def test_metrics_refuse_mismatched_or_nan_inputs() -> None:
    """A short score vector was silently paired with the first labels, and a NaN score ranked above
    every other one (AUC 1.0 below); both must be errors, not numbers."""
    with pytest.raises(SelflabError):
        auc([np.nan, 0.2, 0.3], [1, 0, 0])
    with pytest.raises(SelflabError):
        auc([0.9, 0.1], [1, 0, 1, 0])
    with pytest.raises(SelflabError):
        auc_ci([0.9, 0.1, 0.5, 0.4], [1, 0, 1, 0], groups=["a", "b"], n_boot=50)
    with pytest.raises(SelflabError):
        accuracy_ci([0.9, 0.1, 0.5], [1, 0, 1, 0], n_boot=50)
    with pytest.raises(SelflabError):
        auc([0.9, 0.1], [1, -1])  # -1 negatives would be dropped, giving NaN
