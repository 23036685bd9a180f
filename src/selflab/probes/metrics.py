"""AUC and accuracy with cluster-bootstrap confidence intervals.

Why a cluster bootstrap: each entity contributes a true *and* a false statement, so statements
are not independent. Resampling entities (not statements) gives honest intervals. The bootstrap
is vectorised (weighted Mann-Whitney AUC over all resamples at once), so a sweep over 30 layers
x several probes x datasets stays cheap.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from selflab.errors import SelflabError
from selflab.stats import Estimate, from_resamples

Metric = Estimate  # the one interval type (selflab.stats); old name kept for callers


def _weighted_auc(scores: np.ndarray, y: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """AUC for each row of `weights` (B, n): probability a weighted positive outranks a weighted
    negative, ties counting one half. NaN where a resample lacks a class."""
    order = np.argsort(scores, kind="mergesort")
    s, yy, w = scores[order], y[order], weights[:, order]
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])  # first index of each tie group
    pos = np.add.reduceat(w * (yy == 1), starts, axis=1)
    neg = np.add.reduceat(w * (yy == 0), starts, axis=1)
    neg_below = np.cumsum(neg, axis=1) - neg
    num = (pos * (neg_below + 0.5 * neg)).sum(axis=1)
    den = pos.sum(axis=1) * neg.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / den, np.nan)


def _check(
    scores: Sequence[float] | np.ndarray, y: Sequence[int] | np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Scores and 0/1 labels as arrays. Refuses mismatched lengths (a shorter score vector would
    silently be paired with the first labels) and NaN scores (they would rank above everything)."""
    s, yy = np.asarray(scores, dtype=float).ravel(), np.asarray(y).astype(int).ravel()
    if len(s) != len(yy):
        raise SelflabError(f"{len(s)} scores for {len(yy)} labels", "score exactly the labelled items")
    if np.isnan(s).any():
        raise SelflabError(
            f"{int(np.isnan(s).sum())} of {len(s)} scores are NaN",
            "check the hidden states for inf/NaN (e.g. float16 overflow) before scoring",
        )
    if not set(np.unique(yy)) <= {0, 1}:
        raise SelflabError(f"labels must be 0 or 1, got {sorted(set(yy.tolist()))}", "map labels to 0/1")
    return s, yy


def auc(scores: Sequence[float] | np.ndarray, y: Sequence[int] | np.ndarray) -> float:
    """ROC AUC, ties counting one half; NaN when a class is missing."""
    s, yy = _check(scores, y)
    return float(_weighted_auc(s, yy, np.ones((1, len(s))))[0])


def _cluster_weights(groups: Sequence[str] | None, n: int, n_boot: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if groups is None:
        codes = np.arange(n)
    else:
        if len(groups) != n:
            raise SelflabError(f"{len(groups)} groups for {n} scores", "give one entity per scored item")
        _, codes = np.unique(np.asarray(groups, dtype=object).astype(str), return_inverse=True)
    k = int(codes.max()) + 1 if n else 0
    counts = rng.multinomial(k, np.full(k, 1.0 / k), size=n_boot) if k else np.zeros((n_boot, 0))
    return counts[:, codes].astype(float)


def _summary(point: float, boots: np.ndarray, n: int) -> Metric:
    """Percentile interval; NaN (not None) where undefined, so probe code can sort and plot it."""
    est = from_resamples(point, boots, n, method="cluster-bootstrap-percentile")
    nan = float("nan")
    return est.model_copy(
        update={"value": point if est.value is None else est.value, "low": nan if est.low is None else est.low,
                "high": nan if est.high is None else est.high}
    )  # fmt: skip


def auc_ci(
    scores: Sequence[float] | np.ndarray,
    y: Sequence[int] | np.ndarray,
    groups: Sequence[str] | None = None,
    n_boot: int = 1000,
    seed: int = 0,
) -> Metric:
    """AUC with a 95% percentile interval from resampling `groups` (entities) with replacement."""
    s, yy = _check(scores, y)
    point = auc(s, yy)
    w = _cluster_weights(groups, len(s), n_boot, seed)
    return _summary(point, _weighted_auc(s, yy, w), len(s))


def accuracy_ci(
    scores: Sequence[float] | np.ndarray,
    y: Sequence[int] | np.ndarray,
    groups: Sequence[str] | None = None,
    threshold: float = 0.5,
    n_boot: int = 1000,
    seed: int = 0,
) -> Metric:
    """Accuracy of `score >= threshold` with a cluster-bootstrap 95% interval."""
    s, yy = _check(scores, y)
    correct = ((s >= threshold).astype(int) == yy).astype(float)
    w = _cluster_weights(groups, len(s), n_boot, seed)
    with np.errstate(invalid="ignore", divide="ignore"):
        boots = (w * correct).sum(axis=1) / w.sum(axis=1)
    return _summary(float(correct.mean()) if len(correct) else float("nan"), boots, len(s))


def mean_ci(values: Sequence[float] | np.ndarray, n_boot: int = 1000, seed: int = 0) -> Metric:
    """Mean of per-item values (e.g. 0/1 correctness) with a bootstrap 95% interval."""
    v = np.asarray(values, dtype=float)
    if len(v) == 0:
        return Metric(float("nan"), float("nan"), float("nan"), 0)
    w = _cluster_weights(None, len(v), n_boot, seed)
    return _summary(float(v.mean()), (w * v).sum(axis=1) / w.sum(axis=1), len(v))
