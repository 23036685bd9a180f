"""Step-level judge metrics with confidence intervals.

- First-error localisation (ProcessBench): accuracy on solutions with an error (the predicted
  first wrong step equals the code's), accuracy on fully correct solutions (the judge says "no
  error"), and their harmonic mean (ProcessBench's F1).
- Step-level precision/recall/F1 for finding wrong steps, against the code labels, and AUROC of
  P(correct) (threshold-free; likelihood judges).

Proportions get Wilson intervals (scipy's `binomtest`); F1 and AUROC a percentile bootstrap over
solutions (steps of one solution are not independent, so whole solutions are resampled). A
missing prediction (parse failure) is excluded and counted in `missing`, never scored.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from pydantic import BaseModel

from selflab.stepwise.judges import StepJudgment
from selflab.stepwise.types import BenchSolution


class Metric(BaseModel):
    value: float | None
    lo: float | None = None
    hi: float | None = None
    n: int = 0
    missing: int = 0

    def fmt(self, digits: int = 2) -> str:
        if self.value is None:
            return "n/a"
        ci = (
            f" [{self.lo:.{digits}f}, {self.hi:.{digits}f}]"
            if self.lo is not None and self.hi is not None
            else ""
        )
        return f"{self.value:.{digits}f}{ci} (n={self.n})"


def proportion(hits: Sequence[bool | None]) -> Metric:
    """Share of True among non-missing values, with a Wilson 95% interval."""
    xs = [bool(h) for h in hits if h is not None]
    missing = len(hits) - len(xs)
    if not xs:
        return Metric(value=None, n=0, missing=missing)
    k, n = sum(xs), len(xs)
    from scipy import stats  # lazily: the CLI imports this module to build its flags

    ci = stats.binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    return Metric(value=k / n, lo=float(ci.low), hi=float(ci.high), n=n, missing=missing)


def bootstrap(
    stat: Callable[[np.ndarray], float | None], n_units: int, seed: int = 0, resamples: int = 1000
) -> Metric:
    """`stat(indices)` on all units, with a percentile interval over resampled units."""
    if n_units == 0:
        return Metric(value=None)
    value = stat(np.arange(n_units))
    if value is None:
        return Metric(value=None, n=n_units)
    rng = np.random.default_rng(seed)
    vals = [stat(rng.integers(0, n_units, n_units)) for _ in range(resamples)]
    arr = np.asarray([v for v in vals if v is not None], dtype=float)
    if arr.size < resamples // 2:
        return Metric(value=value, n=n_units)
    return Metric(
        value=value, lo=float(np.quantile(arr, 0.025)), hi=float(np.quantile(arr, 0.975)), n=n_units
    )


def _f1(p: float | None, r: float | None) -> float | None:
    if p is None or r is None or p + r == 0:
        return None if p is None or r is None else 0.0
    return 2 * p * r / (p + r)


def first_error_metrics(
    items: Sequence[BenchSolution], judgments: Sequence[StepJudgment], threshold: float = 0.5, seed: int = 0
) -> dict[str, Metric]:
    truth = [it.labelled.first_error for it in items]
    pred = [j.first_error(threshold) for j in judgments]
    hit = [None if p is None else p == t for p, t in zip(pred, truth, strict=True)]
    err = [h for h, t in zip(hit, truth, strict=True) if t >= 0]
    ok = [h for h, t in zip(hit, truth, strict=True) if t < 0]

    def pb_f1(idx: np.ndarray) -> float | None:
        e = [hit[i] for i in idx if truth[i] >= 0 and hit[i] is not None]
        c = [hit[i] for i in idx if truth[i] < 0 and hit[i] is not None]
        if not e or not c:
            return None
        return _f1(sum(e) / len(e), sum(c) / len(c))

    return {
        "first_error_acc_erroneous": proportion(err),
        "first_error_acc_correct": proportion(ok),
        "first_error_f1": bootstrap(pb_f1, len(items), seed),
        "first_error_acc_all": proportion(hit),
        "baseline_always_no_error_acc": proportion([t < 0 for t in truth]),
    }


def step_metrics(
    items: Sequence[BenchSolution], judgments: Sequence[StepJudgment], threshold: float = 0.5, seed: int = 0
) -> dict[str, Metric]:
    """Positive class: a wrong step. Unparsable steps (code label None) and steps the judge gave no
    verdict are left out and counted."""
    rows: list[list[tuple[bool, float]]] = []  # per solution: (step is wrong, p_correct)
    missing = 0
    for it, j in zip(items, judgments, strict=True):
        sol = []
        for lab, sc in zip(it.labelled.steps, j.steps, strict=False):
            if lab.ok is None:
                continue
            if sc.p_correct is None:
                missing += 1
                continue
            sol.append((not lab.ok, sc.p_correct))
        rows.append(sol)

    def counts(idx: np.ndarray) -> tuple[int, int, int]:
        tp = fp = fn = 0
        for i in idx:
            for wrong, p in rows[i]:
                said_wrong = p < threshold
                tp += wrong and said_wrong
                fp += (not wrong) and said_wrong
                fn += wrong and not said_wrong
        return tp, fp, fn

    def prec(idx: np.ndarray) -> float | None:
        tp, fp, _ = counts(idx)
        return tp / (tp + fp) if tp + fp else None

    def rec(idx: np.ndarray) -> float | None:
        tp, _, fn = counts(idx)
        return tp / (tp + fn) if tp + fn else None

    def f1(idx: np.ndarray) -> float | None:
        tp, fp, fn = counts(idx)
        return 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else None

    def auroc(idx: np.ndarray) -> float | None:
        good = [p for i in idx for w, p in rows[i] if not w]
        bad = [p for i in idx for w, p in rows[i] if w]
        if not good or not bad:
            return None
        from scipy import stats

        u = stats.mannwhitneyu(good, bad, alternative="two-sided").statistic
        return float(u) / (len(good) * len(bad))

    n = len(rows)
    out = {
        "step_precision_wrong": bootstrap(prec, n, seed),
        "step_recall_wrong": bootstrap(rec, n, seed),
        "step_f1_wrong": bootstrap(f1, n, seed),
        "step_auroc": bootstrap(auroc, n, seed),
    }
    for m in out.values():
        m.missing = missing
    steps = [lab for it in items for lab in it.labelled.steps]
    out["step_share_wrong"] = proportion([lab.ok is False for lab in steps if lab.ok is not None])
    return out


def judge_metrics(
    items: Sequence[BenchSolution], judgments: Sequence[StepJudgment], threshold: float = 0.5, seed: int = 0
) -> dict[str, Metric]:
    scores = [s for j in judgments for s in j.steps]
    out = first_error_metrics(items, judgments, threshold, seed)
    out.update(step_metrics(items, judgments, threshold, seed))
    out["step_parse_failure_rate"] = proportion([s.parse_error is not None for s in scores])
    return out
