"""Is a majority vote a valid ground truth? Jury-majority accuracy against verified truth as the
jury grows, with and without personas.

The research plan proposes a diverse majority vote as ground truth where none exists. Here truth
exists (code verifiers), so we can measure how far the majority is from it. `majority_curve` is
pure: it takes each juror's binary vote per item and averages the majority's accuracy over many
seeded random juries of each size (with a bootstrap CI over items).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from selflab.evalbench.metrics import Metric, bootstrap


def majority_vote(votes: np.ndarray) -> np.ndarray:
    """Column-wise majority of a (jurors, items) array of 1/0/NaN votes; NaN = abstained. Items with
    no votes or an exact tie get 0.5 (counted as half right)."""
    v = np.asarray(votes, dtype=float)
    yes = np.nansum(v == 1, axis=0)
    no = np.nansum(v == 0, axis=0)
    out = np.where(yes > no, 1.0, np.where(no > yes, 0.0, 0.5))
    return out


def majority_accuracy(votes: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Per-item accuracy of the majority (1, 0, or 0.5 for a tie)."""
    maj = majority_vote(votes)
    t = np.asarray(truth, dtype=float)
    return np.where(maj == 0.5, 0.5, (maj == t).astype(float))


def majority_curve(
    votes: np.ndarray,
    truth: Sequence[int],
    sizes: Sequence[int] = (1, 3, 5, 9),
    n_juries: int = 50,
    seed: int = 0,
) -> list[Metric]:
    """For each size k: mean over `n_juries` random k-subsets of jurors of the majority's accuracy,
    as a Metric with a bootstrap CI over items (per-item accuracies averaged over the juries)."""
    v = np.asarray(votes, dtype=float)
    n_jurors = v.shape[0]
    rng = np.random.default_rng(seed)
    t = np.asarray(truth, dtype=float)
    out = []
    for k in sizes:
        if k > n_jurors:
            out.append(Metric(None, None, None, 0))
            continue
        draws = 1 if k == n_jurors else n_juries
        per_item = np.zeros(v.shape[1])
        for _ in range(draws):
            members = rng.choice(n_jurors, size=k, replace=False)
            per_item += majority_accuracy(v[members], t)
        per_item /= draws
        out.append(bootstrap(lambda x: float(np.mean(x)) if len(x) else None, per_item, seed=seed))
    return out


def plot_curves(
    curves: dict[str, list[Metric]], sizes: Sequence[int], chance: float | None, path: str
) -> str:
    """Save accuracy-vs-jury-size lines with CI bands as a PNG; returns the path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for label, ms in curves.items():
        xs = [s for s, m in zip(sizes, ms, strict=True) if m.value is not None]
        ys = [m.value for m in ms if m.value is not None]
        lo = [m.ci_low if m.ci_low is not None else m.value for m in ms if m.value is not None]
        hi = [m.ci_high if m.ci_high is not None else m.value for m in ms if m.value is not None]
        ax.plot(xs, ys, marker="o", label=label)
        ax.fill_between(xs, lo, hi, alpha=0.2)
    if chance is not None:
        ax.axhline(chance, color="grey", linestyle="--", linewidth=1, label="majority-class baseline")
    ax.set_xlabel("jury size (judges)")
    ax.set_ylabel("accuracy of the majority vs verified truth")
    ax.set_xticks(list(sizes))
    ax.set_ylim(0, 1)
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title("Is a majority vote a valid ground truth?", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
