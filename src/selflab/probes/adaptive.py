"""Adaptive layer selection, compared against the best fixed layer.

All methods use per-layer probes trained on the train split of a source dataset and decide how to
use the layers from that dataset's *validation* split (or, for the unsupervised one, from the
unlabelled evaluation inputs themselves). They are evaluated on the test split of the source
dataset (in distribution) and of every other dataset (out of distribution):

- `best_fixed`: the single layer with the best validation AUC (the usual hand-picked layer, but
  picked honestly).
- `stacked`: a logistic regression over the per-layer probe logits, fit on validation data: a
  learned weighting of layers.
- `per_input_confident`: for each input, the most confident probe (largest |p - 0.5|) among the
  top-k layers by validation AUC: a per-input layer choice.
- `mean_all`: the average probability over all layers (no selection at all).
- `unsup_confident_layer`: the one layer whose probe is most confident on average over the
  evaluation inputs (no labels needed, so it can adapt to a new dataset at inference time).
- `oracle_fixed`: the best single layer on the evaluation test set: an upper bound, not a method.
"""

from __future__ import annotations

import warnings

import numpy as np
from pydantic import BaseModel

from selflab.probes.metrics import Metric, auc, auc_ci
from selflab.probes.sweep import ProbeGrid

METHODS = (
    "best_fixed",
    "stacked",
    "per_input_confident",
    "mean_all",
    "unsup_confident_layer",
    "oracle_fixed",
)


class AdaptiveResult(BaseModel):
    source: str
    target: str
    probe: str
    auc: dict[str, Metric]
    best_fixed_layer: int
    unsup_layer: int
    stack_weights: dict[int, float]  # stacker coefficients on standardised per-layer logits
    per_input_layers: dict[int, int]  # layer -> how many test inputs used it


class AdaptiveSummary(BaseModel):
    probe: str
    results: list[AdaptiveResult]
    mean_id: dict[str, float]
    mean_ood: dict[str, float]


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-4, 1 - 1e-4)
    return np.log(p / (1 - p))


def _scores_on(grid: ProbeGrid, source: str, kind: str, target: str, layers: list[int]) -> np.ndarray:
    """(layers, n_test) probabilities of the source's probes on the target's test split."""
    if source == target:
        return np.stack([grid.test_scores[(source, kind, lay)] for lay in layers])
    tgt = grid.data[target]
    return np.stack(
        [grid.probes[(source, kind, lay)].score(tgt.test.layer(lay, tgt.layers)) for lay in layers]
    )


def evaluate_pair(
    grid: ProbeGrid, source: str, target: str, kind: str, top_k: int = 5, n_boot: int = 1000, seed: int = 0
) -> AdaptiveResult:
    from sklearn.linear_model import LogisticRegressionCV

    layers = grid.layers_for(source, kind)
    src = grid.data[source]
    tgt = grid.data[target]
    V = np.stack([grid.val_scores[(source, kind, lay)] for lay in layers])  # (L, n_val)
    T = _scores_on(grid, source, kind, target, layers)  # (L, n_test)
    val_auc = np.array([auc(v, src.val.y) for v in V])
    y, groups = tgt.test.y, tgt.test.entities

    out: dict[str, np.ndarray] = {}
    best = int(np.nanargmax(val_auc))
    out["best_fixed"] = T[best]

    Zv, Zt = _logit(V).T, _logit(T).T
    mu, sd = Zv.mean(axis=0), Zv.std(axis=0) + 1e-6
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        folds = int(max(2, min(3, np.bincount(src.val.y).min())))
        stack = LogisticRegressionCV(
            Cs=[1e-2, 1e-1, 1.0], cv=folds, scoring="neg_log_loss", solver="liblinear"
        )
        stack.fit((Zv - mu) / sd, src.val.y)
    out["stacked"] = stack.predict_proba((Zt - mu) / sd)[:, 1]
    weights = stack.coef_[0]  # on standardised logits: comparable across layers

    top = np.argsort(-np.nan_to_num(val_auc, nan=-1))[: max(1, top_k)]
    conf = np.abs(T[top] - 0.5)
    pick = top[np.argmax(conf, axis=0)]
    out["per_input_confident"] = T[pick, np.arange(T.shape[1])]
    out["mean_all"] = T.mean(axis=0)
    unsup = int(np.argmax(np.abs(T - 0.5).mean(axis=1)))
    out["unsup_confident_layer"] = T[unsup]
    test_auc = np.array([auc(t, y) for t in T])
    out["oracle_fixed"] = T[int(np.nanargmax(test_auc))]

    used: dict[int, int] = {}
    for p in pick:
        used[layers[int(p)]] = used.get(layers[int(p)], 0) + 1
    return AdaptiveResult(
        source=source,
        target=target,
        probe=kind,
        auc={m: auc_ci(s, y, groups, n_boot=n_boot, seed=seed) for m, s in out.items()},
        best_fixed_layer=layers[best],
        unsup_layer=layers[unsup],
        stack_weights={layers[i]: float(w) for i, w in enumerate(weights)},
        per_input_layers=dict(sorted(used.items())),
    )


def adaptive_summary(
    grid: ProbeGrid,
    kind: str = "logistic",
    ood: bool = True,
    top_k: int = 5,
    n_boot: int = 1000,
    seed: int = 0,
) -> AdaptiveSummary:
    names = list(grid.data)
    results = []
    for s in names:
        for t in names if ood else [s]:
            results.append(evaluate_pair(grid, s, t, kind, top_k=top_k, n_boot=n_boot, seed=seed))

    def mean(rows: list[AdaptiveResult]) -> dict[str, float]:
        if not rows:
            return {}
        return {m: float(np.nanmean([r.auc[m].value for r in rows])) for m in METHODS}

    return AdaptiveSummary(
        probe=kind,
        results=results,
        mean_id=mean([r for r in results if r.source == r.target]),
        mean_ood=mean([r for r in results if r.source != r.target]),
    )
