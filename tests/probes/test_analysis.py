"""Sweep, adaptive selection, generalization matrix and dynamics on synthetic activations with
known structure (no model): each test would fail if the analysis picked the wrong thing."""

from __future__ import annotations

import numpy as np
import pytest

from selflab.probes.adaptive import adaptive_summary, evaluate_pair
from selflab.probes.datasets import Statement
from selflab.probes.dynamics import SeqData, SeqSplit, analyze
from selflab.probes.generalization import generalization_matrix
from selflab.probes.pipeline import DatasetActs, Split
from selflab.probes.sweep import fit_grid, summarize

L, H = 4, 16  # layers 0..4


def _split(rng, n: int, signal_layers: dict[int, np.ndarray], tag: str) -> Split:
    y = np.repeat([0, 1], n // 2)
    X = rng.normal(size=(n, L + 1, H)).astype(np.float32)
    for layer, direction in signal_layers.items():
        X[:, layer, :] += np.outer(2 * y - 1, direction) * 1.5
    ents = [f"{tag}{i % (n // 2)}" for i in range(n)]
    st = [Statement("x", int(v), e, tag, (0, 1)) for v, e in zip(y, ents, strict=True)]
    return Split(X=X, y=y, entities=ents, statements=st)


def _dataset(name: str, signal_layers: dict[int, np.ndarray], seed: int) -> DatasetActs:
    rng = np.random.default_rng(seed)
    return DatasetActs(
        name=name,
        position="last",
        layers=list(range(L + 1)),
        train=_split(rng, 200, signal_layers, name + "-tr"),
        val=_split(rng, 100, signal_layers, name + "-va"),
        test=_split(rng, 200, signal_layers, name + "-te"),
    )


@pytest.fixture(scope="module")
def grid():
    rng = np.random.default_rng(0)
    shared = rng.normal(size=H)
    shared /= np.linalg.norm(shared)
    other = rng.normal(size=H)
    other -= other @ shared * shared
    other /= np.linalg.norm(other)
    data = {
        "a": _dataset("a", {2: shared}, 1),  # truth at layer 2, shared direction
        "b": _dataset("b", {2: shared, 3: shared}, 2),  # same direction (also at layer 3)
        "c": _dataset("c", {2: other}, 3),  # orthogonal direction: probes from a/b cannot read it
    }
    return fit_grid(data, kinds=("logistic", "mean_diff"), seed=0)


def test_sweep_finds_the_signal_layer(grid) -> None:
    summary = summarize(grid, n_boot=200)
    for b in summary.best:
        assert b.layer in ((2, 3) if b.dataset == "b" else (2,))
        assert b.test_auc.value > 0.9 and b.test_auc.lo > 0.8
    noise = [r for r in summary.results if r.dataset == "a" and r.layer == 0]
    assert all(abs(r.test_auc.value - 0.5) < 0.15 for r in noise)


def test_adaptive_methods(grid) -> None:
    res = evaluate_pair(grid, "a", "a", "logistic", n_boot=200)
    assert res.best_fixed_layer == 2
    weights = res.stack_weights
    assert max(weights, key=lambda k: abs(weights[k])) == 2
    assert res.auc["stacked"].value > 0.9 and res.auc["best_fixed"].value > 0.9
    assert res.auc["oracle_fixed"].value >= res.auc["best_fixed"].value - 1e-9
    assert sum(res.per_input_layers.values()) == 200
    # trained on a, tested on c: the direction does not transfer, whatever the layer choice
    ood = evaluate_pair(grid, "a", "c", "logistic", n_boot=200)
    assert ood.auc["best_fixed"].value < 0.7
    s = adaptive_summary(grid, "logistic", ood=True, n_boot=100)
    assert len(s.results) == 9 and s.mean_id["best_fixed"] > s.mean_ood["best_fixed"]


def test_generalization_matrix_structure(grid) -> None:
    m = generalization_matrix(grid, "logistic", n_boot=200)
    v = m.values()
    names = m.datasets
    a, b, c = names.index("a"), names.index("b"), names.index("c")
    assert v[a, b] > 0.9 and v[b, a] > 0.9  # shared direction transfers
    assert abs(v[a, c] - 0.5) < 0.15 and abs(v[c, a] - 0.5) < 0.15  # orthogonal does not
    assert all(v[i, i] > 0.9 for i in range(3))
    assert m.gap > 0.1 and m.worst_ood[0] in ("a", "b", "c")
    assert m.auc[a][c].lo <= m.auc[a][c].value <= m.auc[a][c].hi


def test_dynamics_relative_generalizes_when_absolute_has_dataset_offsets() -> None:
    """Each dataset adds its own large offset along the truth direction to *every* token (a
    dataset-specific bias), while the answer adds +/- along it. A probe on the end state learns the
    source's bias and fails elsewhere; the change over the answer removes it."""
    rng = np.random.default_rng(0)
    d = np.zeros(H)
    d[0] = 1.0

    def split(offset: float, n: int) -> SeqSplit:
        y = np.repeat([0, 1], n // 2)
        seqs = []
        for label in y:
            ctx = rng.normal(size=H) + offset * d + rng.normal(scale=3.0) * d  # question-specific context
            pre = ctx + rng.normal(scale=0.1, size=H)
            end = ctx + (2 * label - 1) * 1.0 * d + rng.normal(scale=0.1, size=H)
            seqs.append(np.stack([pre, end])[:, None, :].astype(np.float16))
        return SeqSplit(seqs=seqs, y=y)

    data = {
        name: SeqData(name=name, layers=[5], train=split(off, 200), test=split(off, 200))
        for name, off in (("x", -4.0), ("y", 4.0))
    }
    s = analyze(data)
    best = {r.signal: r for r in s.results}
    assert best["relative"].mean_ood > 0.95
    assert best["relative"].mean_ood > best["absolute"].mean_ood + 0.1
    assert best["score_delta"].mean_id > 0.8
    assert s.trajectories and len(s.trajectories[0].mean_true) == 2
