"""Judge metrics as pure functions over plain arrays, each with a seeded bootstrap 95% CI.

Every public metric returns a `Metric` (`selflab.stats.Estimate`: value, CI, n). A metric that cannot be computed (no data,
one class only) has value None rather than a made-up number. Definitions: docs/metrics.md.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import numpy as np

from selflab import stats
from selflab.stats import Estimate

DEFAULT_BOOT = 1000
_boot = DEFAULT_BOOT


@contextmanager
def boot_samples(n: int) -> Iterator[None]:
    """Use `n` bootstrap resamples inside the block (the runner's --n-boot; tests use few)."""
    global _boot
    old, _boot = _boot, n
    try:
        yield
    finally:
        _boot = old


Metric = Estimate  # the one interval type (selflab.stats); old name kept for callers


def bootstrap(
    stat: Callable[..., float | None],
    *columns: Sequence,
    n_boot: int | None = None,
    seed: int = 0,
    alpha: float = 0.05,
) -> Metric:
    """Percentile bootstrap: resample the rows (units) of all columns jointly `n_boot` times."""
    n = _boot if n_boot is None else n_boot
    return stats.bootstrap(stat, *columns, seed=seed, n_resamples=n, level=1 - alpha)


# --- statistics (unbootstrapped) ------------------------------------------------------------------


def _mean(x: np.ndarray) -> float | None:
    return float(np.mean(x)) if len(x) else None


def kappa_stat(a: np.ndarray, b: np.ndarray) -> float | None:
    """Cohen's kappa of two label arrays: (p_o - p_e) / (1 - p_e)."""
    a, b = np.asarray(a), np.asarray(b)
    if not len(a):
        return None
    labels = np.unique(np.concatenate([a, b]))
    p_o = float(np.mean(a == b))
    p_e = float(sum(np.mean(a == k) * np.mean(b == k) for k in labels))
    if p_e >= 1.0:
        return None
    return (p_o - p_e) / (1 - p_e)


def spearman_stat(x: np.ndarray, y: np.ndarray) -> float | None:
    from scipy.stats import spearmanr

    if len(x) < 2 or np.all(x == x[0]) or np.all(y == y[0]):
        return None
    return float(spearmanr(x, y).statistic)


def kendall_stat(x: np.ndarray, y: np.ndarray) -> float | None:
    from scipy.stats import kendalltau

    if len(x) < 2 or np.all(x == x[0]) or np.all(y == y[0]):
        return None
    return float(kendalltau(x, y).statistic)


# --- public metrics -------------------------------------------------------------------------------


def accuracy(predicted: Sequence[int], truth: Sequence[int], seed: int = 0) -> Metric:
    """Share of predictions equal to the truth."""
    return bootstrap(lambda p, t: _mean(p == t), predicted, truth, seed=seed)


def pairwise_accuracy(verdicts: Sequence[str], better: Sequence[str], seed: int = 0) -> tuple[Metric, Metric]:
    """(accuracy with ties counted as wrong, accuracy over non-tie verdicts only). `verdicts` and
    `better` hold "A"/"B" ("tie" allowed in verdicts)."""
    v = np.asarray(verdicts, dtype=object)
    b = np.asarray(better, dtype=object)
    with_ties = bootstrap(lambda v, b: _mean(v == b), v, b, seed=seed)
    keep = v != "tie"
    without = bootstrap(lambda v, b: _mean(v == b), v[keep], b[keep], seed=seed)
    return with_ties, without


def tie_rate(verdicts: Sequence[str], seed: int = 0) -> Metric:
    return bootstrap(lambda v: _mean(v == "tie"), np.asarray(verdicts, dtype=object), seed=seed)


def chance_accuracy(truth: Sequence[int]) -> float | None:
    """Best constant guess (majority class rate): what a judge that ignores the input achieves."""
    t = np.asarray(truth)
    if not len(t):
        return None
    return float(max(np.mean(t == k) for k in np.unique(t)))


def cohen_kappa(a: Sequence, b: Sequence, seed: int = 0) -> Metric:
    return bootstrap(kappa_stat, np.asarray(a, dtype=object), np.asarray(b, dtype=object), seed=seed)


def spearman(x: Sequence[float], y: Sequence[float], seed: int = 0) -> Metric:
    return bootstrap(spearman_stat, x, y, seed=seed)


def kendall(x: Sequence[float], y: Sequence[float], seed: int = 0) -> Metric:
    return bootstrap(kendall_stat, x, y, seed=seed)


def position_consistency(first: Sequence[str], second: Sequence[str], seed: int = 0) -> Metric:
    """Share of pairs whose winner (in original labels) is the same when the order is swapped.
    `first[i]` is the verdict on (A,B), `second[i]` the verdict on (B,A) mapped back to the
    original labels."""
    return bootstrap(
        lambda f, s: _mean(f == s),
        np.asarray(first, dtype=object),
        np.asarray(second, dtype=object),
        seed=seed,
    )


def _pf(shown_first: np.ndarray, shown_second: np.ndarray) -> float | None:
    """(recency-preferred - primacy-preferred) / inconsistent, in the labels the judge saw."""
    inconsistent = shown_first == shown_second  # same shown label twice = different responses
    inconsistent &= (shown_first == "A") | (shown_first == "B")
    ic = int(np.sum(inconsistent))
    if ic == 0:
        return 0.0 if len(shown_first) else None
    rc = int(np.sum(inconsistent & (shown_first == "B")))
    pc = int(np.sum(inconsistent & (shown_first == "A")))
    return (rc - pc) / ic


def preference_fairness(shown_first: Sequence[str], shown_second: Sequence[str], seed: int = 0) -> Metric:
    """Judging the Judges' preference fairness in [-1, 1]: -1 always the first position when the
    orders disagree (primacy), +1 always the second (recency), 0 balanced. Inputs are the verdicts
    as the judge wrote them ("A" = the response shown first) for the two orders."""
    return bootstrap(
        _pf, np.asarray(shown_first, dtype=object), np.asarray(shown_second, dtype=object), seed=seed
    )


def repetition_stability(samples: Sequence[Sequence], seed: int = 0) -> Metric:
    """Mean over items of the share of repeated judgments that agree with the item's most
    frequent one (1 = perfectly repeatable)."""
    per_item = []
    for s in samples:
        vals = [x for x in s if x is not None]
        if vals:
            _, counts = np.unique(np.asarray(vals, dtype=object).astype(str), return_counts=True)
            per_item.append(counts.max() / len(vals))
    return bootstrap(_mean, per_item, seed=seed)


def flip_rate(before: Sequence, after: Sequence, seed: int = 0) -> Metric:
    """Share of units whose decision differs before and after a perturbation."""
    return bootstrap(
        lambda a, b: _mean(a != b),
        np.asarray(before, dtype=object),
        np.asarray(after, dtype=object),
        seed=seed,
    )


def mean_shift(before: Sequence[float], after: Sequence[float], seed: int = 0) -> Metric:
    """Mean of (after - before) for numeric judgments."""
    return bootstrap(lambda a, b: _mean(b - a), before, after, seed=seed)


def parse_failure_rate(failed: Sequence[bool], seed: int = 0) -> Metric:
    return bootstrap(_mean, np.asarray(failed, dtype=float), seed=seed)


def length_features(len_x: Sequence[float], len_y: Sequence[float]) -> np.ndarray:
    """AlpacaEval's length feature: tanh of the length difference divided by its std."""
    d = np.asarray(len_x, dtype=float) - np.asarray(len_y, dtype=float)
    sd = float(np.std(d)) if len(d) else 0.0
    return np.tanh(d / sd) if sd > 0 else np.zeros_like(d)


def _logit_fit(y: np.ndarray, x: np.ndarray) -> tuple[float, float] | None:
    """Unregularised logistic regression y ~ b0 + b1 x by Newton steps (with a tiny ridge so
    separable data stays finite). Returns (b0, b1) or None when y has one class."""
    if len(y) < 2 or np.all(y == y[0]):
        return None
    X = np.column_stack([np.ones_like(x), x])
    beta = np.zeros(2)
    ridge = 1e-3 * np.eye(2)
    for _ in range(100):
        p = 1 / (1 + np.exp(-X @ beta))
        grad = X.T @ (y - p) - ridge @ beta
        hess = X.T @ (X * (p * (1 - p))[:, None]) + ridge
        step = np.linalg.solve(hess, grad)
        beta += step
        if np.max(np.abs(step)) < 1e-8:
            break
    return float(beta[0]), float(beta[1])


def length_bias(
    wins: Sequence[float], len_x: Sequence[float], len_y: Sequence[float], seed: int = 0
) -> Metric:
    """Slope b1 of the GLM P(x wins) = sigmoid(b0 + b1 * tanh((len_x - len_y) / sd)): > 0 means
    the judge favours the longer response beyond what it would otherwise decide."""
    feats = length_features(len_x, len_y)

    def stat(y: np.ndarray, f: np.ndarray) -> float | None:
        fit = _logit_fit(y, f)
        return None if fit is None else fit[1]

    return bootstrap(stat, np.asarray(wins, dtype=float), feats, seed=seed)


def lc_win_rate(
    wins: Sequence[float], len_x: Sequence[float], len_y: Sequence[float], seed: int = 0
) -> Metric:
    """Length-controlled win rate of x: the GLM's predicted win rate at zero length difference,
    sigmoid(b0). Equals the raw win rate when x wins every or no comparison."""
    feats = length_features(len_x, len_y)

    def stat(y: np.ndarray, f: np.ndarray) -> float | None:
        if not len(y):
            return None
        fit = _logit_fit(y, f)
        if fit is None:
            return float(y[0])
        return 1 / (1 + math.exp(-fit[0]))

    return bootstrap(stat, np.asarray(wins, dtype=float), feats, seed=seed)


def self_preference(own_minus_other: Sequence[float], seed: int = 0) -> Metric:
    """Mean of (judgment of the judge's own response - judgment of another source's equally
    correct response): +1/-1/0 per pairwise comparison (own wins / other wins / tie), or the score
    difference divided by the scale width for pointwise judges. 0 = no self-preference."""
    return bootstrap(_mean, own_minus_other, seed=seed)
