"""The truth meter's statistics: now `selflab.stats`; these names stay so loop code keeps working.

Why paired tests: before/after comparisons are on the *same* held-out items, so a paired test
(exact McNemar for pass/fail, Wilcoxon signed-rank for scores) is far more sensitive than
comparing two intervals.
"""

from __future__ import annotations

from collections.abc import Sequence

from selflab import stats
from selflab.stats import Estimate, PairedTest
from selflab.stats import mcnemar as mcnemar_exact

__all__ = ["Estimate", "PairedTest", "bootstrap_ci", "mcnemar_exact", "paired_compare"]


def bootstrap_ci(
    values: Sequence[float | bool | None], seed: int = 0, resamples: int = 2000, level: float = 0.95
) -> Estimate:
    """Mean and percentile bootstrap interval; None values are excluded from `n`."""
    return stats.mean(values, seed=seed, n_resamples=resamples, level=level)


def paired_compare(
    before: Sequence[float | bool | None],
    after: Sequence[float | bool | None],
    seed: int = 0,
    resamples: int = 2000,
    level: float = 0.95,
) -> PairedTest:
    """After minus before on the same items (McNemar for pass/fail, Wilcoxon otherwise)."""
    return stats.paired_compare(before, after, seed=seed, n_resamples=resamples, level=level)
