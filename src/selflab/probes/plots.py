"""PNG plots for probe results: layer curves with CI bands, generalization heatmaps, token
trajectories. Headless (Agg backend), one function per picture."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from selflab.probes.dynamics import DynamicsSummary
from selflab.probes.generalization import GeneralizationMatrix
from selflab.probes.guided import GuidedSummary
from selflab.probes.sweep import SweepSummary


def _plt():  # type: ignore[no-untyped-def]
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def layer_curve(summary: SweepSummary, path: Path, title: str = "") -> Path:
    """Test AUC per layer with its 95% CI band: one panel per probe kind, one line per dataset."""
    plt = _plt()
    kinds = sorted({r.probe for r in summary.results})
    datasets = list(dict.fromkeys(r.dataset for r in summary.results))
    fig, axes = plt.subplots(1, len(kinds), figsize=(5.5 * len(kinds), 4), squeeze=False, sharey=True)
    for ax, kind in zip(axes[0], kinds, strict=True):
        for d in datasets:
            rows = sorted(
                (r for r in summary.results if r.probe == kind and r.dataset == d), key=lambda r: r.layer
            )
            if not rows:
                continue
            x = [r.layer for r in rows]
            y = [r.test_auc.value for r in rows]
            (line,) = ax.plot(x, y, marker="." if len(x) < 15 else None, label=d)
            ax.fill_between(
                x,
                [r.test_auc.lo for r in rows],
                [r.test_auc.hi for r in rows],
                alpha=0.15,
                color=line.get_color(),
            )
            best = next((b for b in summary.best if b.probe == kind and b.dataset == d), None)
            if best is not None:
                ax.scatter(
                    [best.layer], [best.test_auc.value], color=line.get_color(), edgecolor="black", zorder=3
                )
        ax.axhline(0.5, color="grey", lw=0.8, ls="--")
        ax.set_title(f"{kind} probe ({summary.position})")
        ax.set_xlabel("layer (0 = embeddings)")
        ax.set_ylim(0.3, 1.02)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("test AUC (95% CI); dot = layer chosen on val")
    axes[0][-1].legend(fontsize=8, loc="lower right")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def heatmap(matrix: GeneralizationMatrix, path: Path) -> Path:
    """Train-on-row, test-on-column AUC with CIs written in the cells."""
    plt = _plt()
    m = matrix.values()
    n = len(matrix.datasets)
    fig, ax = plt.subplots(figsize=(1.6 * n + 2.5, 1.2 * n + 1.8))
    # 0.5 is chance; below it the probe is *inverted* on that dataset (e.g. under negation)
    im = ax.imshow(m, vmin=0.0, vmax=1.0, cmap="RdBu")
    for i in range(n):
        for j in range(n):
            c = matrix.auc[i][j]
            ax.text(
                j,
                i,
                f"{c.value:.2f}\n[{c.lo:.2f},{c.hi:.2f}]",
                ha="center",
                va="center",
                fontsize=7,
                color="white" if abs(c.value - 0.5) > 0.35 else "black",  # type: ignore[operator]
            )
    labels = [f"{d}\n(L{matrix.layers[d]})" for d in matrix.datasets]
    ax.set_xticks(range(n), matrix.datasets, rotation=30, ha="right")
    ax.set_yticks(range(n), labels)
    ax.set_xlabel("tested on")
    ax.set_ylabel("trained on (layer chosen on its val split)")
    ax.set_title(f"{matrix.probe}: ID {matrix.mean_id:.3f}, OOD {matrix.mean_ood:.3f}, gap {matrix.gap:.3f}")
    fig.colorbar(im, ax=ax, label="test AUC")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def dynamics_plot(summary: DynamicsSummary, path: Path) -> Path:
    """Left: mean probe score per token offset for true vs false. Right: ID and OOD AUC per layer
    for the absolute, relative and score-delta signals."""
    plt = _plt()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(12, 4))
    last = max(t.layer for t in summary.trajectories) if summary.trajectories else None
    for t in summary.trajectories:
        if t.layer != last:
            continue
        x = np.arange(len(t.mean_true))
        (line,) = a1.plot(x, t.mean_true, label=f"{t.dataset} true")
        a1.plot(x, t.mean_false, ls="--", color=line.get_color())
    a1.set_xlabel("token offset (0 = pre-answer token)")
    a1.set_ylabel(f"mean P(true), layer {last} (dashed: false)")
    a1.legend(fontsize=7)
    a1.grid(alpha=0.3)
    for sig in ("absolute", "relative", "score_delta"):
        rows = sorted((r for r in summary.results if r.signal == sig), key=lambda r: r.layer)
        (line,) = a2.plot([r.layer for r in rows], [r.mean_id for r in rows], label=f"{sig} ID")
        a2.plot(
            [r.layer for r in rows],
            [r.mean_ood for r in rows],
            ls="--",
            color=line.get_color(),
            label=f"{sig} OOD",
        )
    a2.axhline(0.5, color="grey", lw=0.8)
    a2.set_xlabel("layer")
    a2.set_ylabel("mean AUC")
    a2.legend(fontsize=7)
    a2.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def guided_bars(summary: GuidedSummary, path: Path) -> Path:
    """Accuracy of each best-of-N selection method with 95% CIs."""
    plt = _plt()
    methods = list(summary.accuracy)
    vals = [summary.accuracy[m].value for m in methods]
    lo = [summary.accuracy[m].value - summary.accuracy[m].lo for m in methods]  # type: ignore[operator]
    hi = [summary.accuracy[m].hi - summary.accuracy[m].value for m in methods]  # type: ignore[operator]
    fig, ax = plt.subplots(figsize=(1.1 * len(methods) + 2, 3.8))
    colors = ["tab:orange" if m == "probe" else "tab:grey" if m == "oracle" else "tab:blue" for m in methods]
    ax.bar(methods, vals, yerr=[lo, hi], capsize=4, color=colors)
    ax.set_ylabel("accuracy on test questions (95% CI)")
    ax.set_title(f"best-of-{summary.n_samples} on {summary.n_test_questions} questions ({summary.model})")
    ax.set_ylim(0, 1)
    plt.setp(ax.get_xticklabels(), rotation=30, ha="right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
