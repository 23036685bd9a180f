"""One interval type and the tests selflab's claims need, built on `scipy.stats`.

Why one module: every producer (judge benchmark, probes, loops, tournaments) reports a number with
an interval, and a report must render all of them the same way. `Estimate` is that number; the
functions below are thin, seeded wrappers over scipy so that each method is the textbook one:

- a proportion (k of n): Wilson score interval (`binomtest(...).proportion_ci`);
- any statistic of paired rows: percentile bootstrap (`scipy.stats.bootstrap`), where resamples
  on which the statistic is undefined (one class left, say) are dropped, not counted as 0;
- paired before/after: exact McNemar (binomial test on the discordant pairs) for pass/fail,
  Wilcoxon signed-rank for scores, sign test and paired t-test on request.

A custom resampling scheme (probes resample entities, not rows) summarises its own bootstrap
distribution with `from_resamples`.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, model_validator

DEFAULT_LEVEL = 0.95
DEFAULT_RESAMPLES = 1000

_LEGACY_KEYS = {"mean": "value", "lo": "low", "hi": "high", "ci_low": "low", "ci_high": "high"}


class Estimate(BaseModel):
    """A point estimate with its two-sided interval at `level` over `n` units.

    `value` is None when the statistic is undefined (no data, one class only): never a made-up
    number. `low`/`high` are None when no interval could be computed (n < 2). `method` names how
    the interval was obtained ("wilson", "bootstrap-percentile", ...). Older spellings (`mean`,
    `lo`, `hi`, `ci_low`, `ci_high`) are accepted on input and readable as properties, so old
    metric files still load.
    """

    model_config = ConfigDict(frozen=True)

    value: float | None
    low: float | None = None
    high: float | None = None
    n: int = 0
    method: str = ""
    level: float = DEFAULT_LEVEL

    def __init__(
        self,
        value: float | None = None,
        low: float | None = None,
        high: float | None = None,
        n: int = 0,
        /,
        **data: Any,
    ) -> None:
        data = _rename_legacy(data)
        data.setdefault("value", value)
        data.setdefault("low", low)
        data.setdefault("high", high)
        data.setdefault("n", n)
        super().__init__(**data)

    @model_validator(mode="before")
    @classmethod
    def _legacy(cls, data: Any) -> Any:
        return _rename_legacy(data) if isinstance(data, dict) else data

    # Old attribute names, kept so callers written against the four former CI types still work.
    @property
    def mean(self) -> float | None:
        return self.value

    @property
    def lo(self) -> float | None:
        return self.low

    @property
    def hi(self) -> float | None:
        return self.high

    @property
    def ci_low(self) -> float | None:
        return self.low

    @property
    def ci_high(self) -> float | None:
        return self.high

    @property
    def has_interval(self) -> bool:
        return _ok(self.low) and _ok(self.high)

    def fmt(self, digits: int = 3, with_n: bool = True) -> str:
        """`0.712 [0.601, 0.810] (n=52)`; `n/a` when undefined."""
        if not _ok(self.value):
            return "n/a"
        text = f"{self.value:.{digits}f}"
        if self.has_interval:
            text += f" [{self.low:.{digits}f}, {self.high:.{digits}f}]"
        return f"{text} (n={self.n})" if with_n else text

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump()


def _rename_legacy(data: dict[str, Any]) -> dict[str, Any]:
    out = dict(data)
    for old, new in _LEGACY_KEYS.items():
        if old in out:
            v = out.pop(old)
            out.setdefault(new, v)
    return out


def _ok(x: float | None) -> bool:
    return x is not None and math.isfinite(x)


def _finite(x: Any) -> float:
    """A statistic's output as a float, NaN when undefined (None, inf)."""
    if x is None:
        return math.nan
    x = float(x)
    return x if math.isfinite(x) else math.nan


# --- proportions ------------------------------------------------------------------------------


def proportion(k: int, n: int, level: float = DEFAULT_LEVEL, method: str = "wilson") -> Estimate:
    """k successes of n with a score interval (Wilson by default; "exact" = Clopper-Pearson)."""
    if n <= 0:
        return Estimate(None, None, None, 0, method=method, level=level)
    from scipy.stats import binomtest

    ci = binomtest(int(k), int(n)).proportion_ci(confidence_level=level, method=method)
    return Estimate(k / n, float(ci.low), float(ci.high), int(n), method=method, level=level)


def wilson(k: int, n: int, level: float = DEFAULT_LEVEL) -> tuple[float, float]:
    """(low, high) of the Wilson score interval; (0, 1) when n is 0."""
    est = proportion(k, n, level)
    return (0.0, 1.0) if est.low is None or est.high is None else (est.low, est.high)


def binomial_p(
    k: int, n: int, p: float = 0.5, alternative: Literal["two-sided", "greater", "less"] = "greater"
) -> float:
    """Exact binomial test p-value; 1.0 when there are no trials."""
    if n <= 0:
        return 1.0
    from scipy.stats import binomtest

    return float(binomtest(int(k), int(n), p, alternative=alternative).pvalue)


# --- bootstrap --------------------------------------------------------------------------------


def _column(c: Sequence[Any] | np.ndarray) -> np.ndarray:
    try:
        return np.asarray(c, dtype=float)
    except (TypeError, ValueError):
        return np.asarray(c, dtype=object)


def from_resamples(
    point: float | None,
    resampled: Sequence[float] | np.ndarray,
    n: int,
    level: float = DEFAULT_LEVEL,
    method: str = "bootstrap-percentile",
) -> Estimate:
    """Percentile interval of a bootstrap distribution; undefined (NaN) resamples are dropped."""
    value = None if point is None or not math.isfinite(point) else float(point)
    boots = np.asarray(resampled, dtype=float)
    boots = boots[np.isfinite(boots)]
    if value is None or boots.size == 0:
        return Estimate(value, None, None, n, method=method, level=level)
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(boots, [alpha, 1.0 - alpha])
    return Estimate(value, float(lo), float(hi), n, method=method, level=level)


def bootstrap(
    stat: Callable[..., float | None],
    *columns: Sequence[Any] | np.ndarray,
    seed: int = 0,
    n_resamples: int = DEFAULT_RESAMPLES,
    level: float = DEFAULT_LEVEL,
) -> Estimate:
    """`stat(*columns)` with a percentile bootstrap interval from resampling rows jointly.

    The columns are paired (row i of each belongs to unit i) and may hold strings. Resampling is
    `scipy.stats.bootstrap` over row indices; resamples where `stat` returns None are dropped."""
    arrays = [_column(c) for c in columns]
    n = len(arrays[0]) if arrays else 0
    point = _finite(stat(*arrays)) if n else math.nan
    if not math.isfinite(point):
        return Estimate(None, None, None, n, method="bootstrap-percentile", level=level)
    if n < 2 or n_resamples <= 0:
        return Estimate(point, None, None, n, method="bootstrap-percentile", level=level)
    from scipy.stats import DegenerateDataWarning
    from scipy.stats import bootstrap as scipy_bootstrap

    def on_indices(idx: np.ndarray, axis: int = -1) -> np.ndarray:
        rows = np.atleast_2d(idx)
        return np.array([_finite(stat(*(a[r] for a in arrays))) for r in rows])

    with warnings.catch_warnings():  # undefined resamples are dropped below, not an error
        warnings.simplefilter("ignore", DegenerateDataWarning)
        res = scipy_bootstrap(
            (np.arange(n),),
            on_indices,
            vectorized=True,
            n_resamples=n_resamples,
            confidence_level=level,
            method="percentile",
            rng=np.random.default_rng(seed),
        )
    return from_resamples(point, res.bootstrap_distribution, n, level)


def mean(
    values: Sequence[float | bool | None],
    seed: int = 0,
    n_resamples: int = DEFAULT_RESAMPLES,
    level: float = DEFAULT_LEVEL,
) -> Estimate:
    """Mean with a percentile bootstrap interval; None values (unparsable) are excluded from `n`."""
    xs = np.asarray([float(v) for v in values if v is not None], dtype=float)
    return bootstrap(_mean, xs, seed=seed, n_resamples=n_resamples, level=level)


def _mean(x: np.ndarray) -> float | None:
    return float(np.mean(x)) if len(x) else None


# --- paired comparisons -----------------------------------------------------------------------


class PairedTest(BaseModel):
    """After minus before on the same items: the mean difference with its interval and a p-value."""

    delta: Estimate
    p_value: float | None
    test: str
    improved: int = 0  # items that went fail -> pass (binary) or got a higher score
    worsened: int = 0


def mcnemar(before: Sequence[bool], after: Sequence[bool]) -> float:
    """Two-sided exact McNemar p-value: a binomial test on the discordant pairs."""
    if len(before) != len(after):
        raise ValueError("paired samples must have the same length")
    b = sum(1 for x, y in zip(before, after, strict=True) if x and not y)
    c = sum(1 for x, y in zip(before, after, strict=True) if y and not x)
    return binomial_p(c, b + c, 0.5, alternative="two-sided")


def sign_test(diffs: Sequence[float]) -> float:
    """Two-sided sign test on non-zero differences."""
    d = np.asarray(diffs, dtype=float)
    return binomial_p(int((d > 0).sum()), int((d != 0).sum()), 0.5, alternative="two-sided")


def wilcoxon(diffs: Sequence[float]) -> float:
    """Two-sided Wilcoxon signed-rank p-value (1.0 when every difference is zero)."""
    d = np.asarray(diffs, dtype=float)
    if not np.any(d != 0):
        return 1.0
    from scipy.stats import wilcoxon as scipy_wilcoxon

    return float(scipy_wilcoxon(d, zero_method="wilcox").pvalue)


def ttest_rel(before: Sequence[float], after: Sequence[float]) -> float:
    """Two-sided paired t-test p-value (1.0 when the differences have no spread)."""
    x, y = np.asarray(before, dtype=float), np.asarray(after, dtype=float)
    if len(x) < 2 or np.allclose(y - x, (y - x)[0]):
        return 1.0 if len(x) < 2 or (y - x)[0] == 0 else 0.0
    from scipy.stats import ttest_rel as scipy_ttest_rel

    return float(scipy_ttest_rel(y, x).pvalue)


PairedMethod = Literal["auto", "mcnemar", "wilcoxon", "sign", "ttest"]


def paired_compare(
    before: Sequence[float | bool | None],
    after: Sequence[float | bool | None],
    seed: int = 0,
    n_resamples: int = DEFAULT_RESAMPLES,
    level: float = DEFAULT_LEVEL,
    test: PairedMethod = "auto",
) -> PairedTest:
    """Compare per-item outcomes of two models on the same items; pairs with a None are dropped.
    "auto": exact McNemar when both sides are pass/fail, Wilcoxon signed-rank otherwise."""
    if len(before) != len(after):
        raise ValueError("paired samples must have the same length")
    pairs = [(a, b) for a, b in zip(before, after, strict=True) if a is not None and b is not None]
    if not pairs:
        return PairedTest(delta=Estimate(None), p_value=None, test="none")
    x = np.asarray([float(a) for a, _ in pairs])
    y = np.asarray([float(b) for _, b in pairs])
    diffs = y - x
    delta = mean(diffs, seed=seed, n_resamples=n_resamples, level=level)
    counts = {"improved": int((diffs > 0).sum()), "worsened": int((diffs < 0).sum())}
    if diffs.size == 1:
        return PairedTest(delta=delta, p_value=None, test="n=1", **counts)
    if test == "auto":
        binary = all(isinstance(a, bool) and isinstance(b, bool) for a, b in pairs)
        test = "mcnemar" if binary else "wilcoxon"
    if test == "mcnemar":
        p, name = mcnemar([bool(a) for a, _ in pairs], [bool(b) for _, b in pairs]), "mcnemar-exact"
    elif test == "wilcoxon":
        p, name = wilcoxon(diffs), "wilcoxon"
    elif test == "sign":
        p, name = sign_test(diffs), "sign"
    else:
        p, name = ttest_rel(x, y), "ttest-rel"
    return PairedTest(delta=delta, p_value=p, test=name, **counts)
