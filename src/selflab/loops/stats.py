"""Statistics the truth meter reports: bootstrap confidence intervals and paired tests.

Why these: per-iteration objective scores come from a few dozen to a few hundred held-out items,
so every number needs an interval; and before/after comparisons are on the *same* items, so a
paired test (exact McNemar for pass/fail, paired bootstrap for scores) is far more sensitive
than comparing two intervals.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel


class Estimate(BaseModel):
    """A mean with a bootstrap percentile interval over `n` items (None entries excluded)."""

    mean: float | None
    lo: float | None = None
    hi: float | None = None
    n: int = 0

    def fmt(self, digits: int = 3) -> str:
        if self.mean is None:
            return "n/a"
        if self.lo is None or self.hi is None:
            return f"{self.mean:.{digits}f} (n={self.n})"
        return f"{self.mean:.{digits}f} [{self.lo:.{digits}f}, {self.hi:.{digits}f}] (n={self.n})"


def bootstrap_ci(
    values: Sequence[float | bool | None], seed: int = 0, resamples: int = 2000, level: float = 0.95
) -> Estimate:
    """Mean and percentile bootstrap interval. Unparsable (None) values are excluded and the
    remaining count is reported in `n`."""
    xs = np.asarray([float(v) for v in values if v is not None], dtype=float)
    if xs.size == 0:
        return Estimate(mean=None, n=0)
    mean = float(xs.mean())
    if xs.size == 1:
        return Estimate(mean=mean, lo=mean, hi=mean, n=1)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, xs.size, size=(resamples, xs.size))
    means = xs[idx].mean(axis=1)
    alpha = (1.0 - level) / 2.0
    return Estimate(
        mean=mean,
        lo=float(np.quantile(means, alpha)),
        hi=float(np.quantile(means, 1 - alpha)),
        n=int(xs.size),
    )


class PairedTest(BaseModel):
    """After minus before on the same items."""

    delta: Estimate
    p_value: float | None
    test: str
    improved: int = 0  # items that went fail -> pass (binary) or got a higher score
    worsened: int = 0


def mcnemar_exact(before: Sequence[bool], after: Sequence[bool]) -> float:
    """Two-sided exact McNemar p-value (binomial test on the discordant pairs)."""
    if len(before) != len(after):
        raise ValueError("paired samples must have the same length")
    b = sum(1 for x, y in zip(before, after, strict=True) if x and not y)
    c = sum(1 for x, y in zip(before, after, strict=True) if y and not x)
    n = b + c
    if n == 0:
        return 1.0
    k = min(b, c)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2.0**n
    return min(1.0, 2.0 * tail)


def paired_bootstrap_p(diffs: np.ndarray, seed: int, resamples: int) -> tuple[float, np.ndarray]:
    """Two-sided bootstrap p-value for mean(diffs) == 0 (centred resampling) and the resampled means."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, diffs.size, size=(resamples, diffs.size))
    means = diffs[idx].mean(axis=1)
    centred = means - diffs.mean()
    p = float((np.abs(centred) >= abs(diffs.mean())).mean())
    return max(p, 1.0 / resamples), means


def paired_compare(
    before: Sequence[float | bool | None],
    after: Sequence[float | bool | None],
    seed: int = 0,
    resamples: int = 2000,
    level: float = 0.95,
) -> PairedTest:
    """Compare per-item outcomes of two models on the same items. Items where either side is
    None are dropped. Binary outcomes use exact McNemar; others a paired bootstrap."""
    if len(before) != len(after):
        raise ValueError("paired samples must have the same length")
    pairs = [(a, b) for a, b in zip(before, after, strict=True) if a is not None and b is not None]
    if not pairs:
        return PairedTest(delta=Estimate(mean=None), p_value=None, test="none")
    x = np.asarray([float(a) for a, _ in pairs])
    y = np.asarray([float(b) for _, b in pairs])
    diffs = y - x
    binary = all(isinstance(a, bool) and isinstance(b, bool) for a, b in pairs)
    if diffs.size == 1:
        d = float(diffs[0])
        return PairedTest(delta=Estimate(mean=d, lo=d, hi=d, n=1), p_value=None, test="n=1")
    p_boot, means = paired_bootstrap_p(diffs, seed, resamples)
    alpha = (1.0 - level) / 2.0
    delta = Estimate(
        mean=float(diffs.mean()),
        lo=float(np.quantile(means, alpha)),
        hi=float(np.quantile(means, 1 - alpha)),
        n=int(diffs.size),
    )
    if binary:
        p = mcnemar_exact([bool(a) for a, _ in pairs], [bool(b) for _, b in pairs])
        test = "mcnemar-exact"
    else:
        p, test = p_boot, "paired-bootstrap"
    return PairedTest(
        delta=delta,
        p_value=p,
        test=test,
        improved=int((diffs > 0).sum()),
        worsened=int((diffs < 0).sum()),
    )
