"""Token dynamics: how a probe's score evolves over the tokens of an answer, and whether the
*change* of the representation over the answer generalizes better than its absolute value.

Every sequence starts at the pre-answer token (the last token before the answer span: it has read
the question but not the answer) and runs to the end of the text. Three truth signals per layer:

- `absolute`: a probe on the state of the last token, h_end.
- `relative`: a probe on the change over the answer, h_end - h_pre (the proposal's "incremental
  knowledge injection": what the answer added, with the question-specific part subtracted).
- `score_delta`: no new probe: the absolute probe's score at the end minus at the pre-answer token.

Each is trained on one dataset and tested on every dataset, like the generalization matrix, so
in-distribution and out-of-distribution AUC can be compared per signal and layer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel

from selflab.probes import datasets as ds
from selflab.probes.metrics import auc
from selflab.probes.models import make_probe

SIGNALS = ("absolute", "relative", "score_delta")


@dataclass
class SeqSplit:
    seqs: list[np.ndarray]  # each (tokens, layers', hidden), first token = pre-answer
    y: np.ndarray


@dataclass
class SeqData:
    name: str
    layers: list[int]
    train: SeqSplit
    test: SeqSplit


def seq_data(
    name: str, data: ds.ProbeDataset, seqs: list[np.ndarray], layers: list[int], seed: int
) -> SeqData:
    idx = ds.split_indices(data.statements, seed=seed)
    y = np.array(data.labels())

    def pick(key: str) -> SeqSplit:
        return SeqSplit(seqs=[seqs[i] for i in idx[key]], y=y[idx[key]])

    return SeqData(name=name, layers=layers, train=pick("train"), test=pick("test"))


def _features(split: SeqSplit, col: int, signal: str) -> np.ndarray:
    end = np.stack([s[-1, col] for s in split.seqs]).astype(np.float32)
    if signal == "absolute":
        return end
    pre = np.stack([s[0, col] for s in split.seqs]).astype(np.float32)
    return end - pre


class SignalResult(BaseModel):
    layer: int
    signal: str
    matrix: list[list[float]]  # AUC[train i][test j]
    mean_id: float
    mean_ood: float


class Trajectory(BaseModel):
    dataset: str
    layer: int
    mean_true: list[float]  # mean probe score at token offset k after the pre-answer token
    mean_false: list[float]
    count: list[int]


class DynamicsSummary(BaseModel):
    datasets: list[str]
    layers: list[int]
    results: list[SignalResult]
    trajectories: list[Trajectory]
    # signal -> its best layer by mean OOD AUC (optimistic for every signal alike) and averages
    # over all analysed layers (the unbiased comparison)
    best: dict[str, dict[str, float]]


def trajectories(probe: object, data: SeqData, col: int, max_len: int = 12) -> Trajectory:
    """Mean probe score per token offset (0 = pre-answer) for true and false test statements."""
    sums = {1: np.zeros(max_len), 0: np.zeros(max_len)}
    cnt = {1: np.zeros(max_len), 0: np.zeros(max_len)}
    for seq, label in zip(data.test.seqs, data.test.y, strict=True):
        s = probe.score(seq[:max_len, col].astype(np.float32))  # type: ignore[attr-defined]
        sums[int(label)][: len(s)] += s
        cnt[int(label)][: len(s)] += 1
    with np.errstate(invalid="ignore", divide="ignore"):
        mt, mf = sums[1] / cnt[1], sums[0] / cnt[0]
    keep = int(((cnt[1] > 0) & (cnt[0] > 0)).sum())
    return Trajectory(
        dataset=data.name,
        layer=data.layers[col],
        mean_true=[float(x) for x in mt[:keep]],
        mean_false=[float(x) for x in mf[:keep]],
        count=[int(x) for x in (cnt[1] + cnt[0])[:keep]],
    )


def analyze(data: dict[str, SeqData], layers: Sequence[int] | None = None, seed: int = 0) -> DynamicsSummary:
    names = list(data)
    all_layers = next(iter(data.values())).layers
    layers = list(layers) if layers is not None else all_layers
    results: list[SignalResult] = []
    trajs: list[Trajectory] = []
    n = len(names)
    off = ~np.eye(n, dtype=bool)
    for layer in layers:
        col = all_layers.index(layer)
        mats = {s: np.full((n, n), np.nan) for s in SIGNALS}
        for i, src in enumerate(names):
            abs_probe = make_probe("logistic", seed=seed).fit(
                _features(data[src].train, col, "absolute"), data[src].train.y
            )
            rel_probe = make_probe("logistic", seed=seed).fit(
                _features(data[src].train, col, "relative"), data[src].train.y
            )
            for j, tgt in enumerate(names):
                t = data[tgt].test
                mats["absolute"][i, j] = auc(abs_probe.score(_features(t, col, "absolute")), t.y)
                mats["relative"][i, j] = auc(rel_probe.score(_features(t, col, "relative")), t.y)
                end = abs_probe.score(np.stack([s[-1, col] for s in t.seqs]).astype(np.float32))
                pre = abs_probe.score(np.stack([s[0, col] for s in t.seqs]).astype(np.float32))
                mats["score_delta"][i, j] = auc(end - pre, t.y)
            if layer == layers[len(layers) // 2] or layer == layers[-1]:
                trajs.append(trajectories(abs_probe, data[src], col))
        for sig, m in mats.items():
            results.append(
                SignalResult(
                    layer=layer,
                    signal=sig,
                    matrix=m.tolist(),
                    mean_id=float(np.nanmean(np.diag(m))),
                    mean_ood=float(np.nanmean(m[off])) if n > 1 else float("nan"),
                )
            )
    best: dict[str, dict[str, float]] = {}
    for sig in SIGNALS:
        rows = [r for r in results if r.signal == sig]
        key = (lambda r: r.mean_ood) if n > 1 else (lambda r: r.mean_id)
        b = max(rows, key=lambda r: np.nan_to_num(key(r), nan=-1))
        best[sig] = {
            "layer": b.layer,
            "mean_id": b.mean_id,
            "mean_ood": b.mean_ood,
            "avg_id_over_layers": float(np.nanmean([r.mean_id for r in rows])),
            "avg_ood_over_layers": float(np.nanmean([r.mean_ood for r in rows])),
        }
    return DynamicsSummary(
        datasets=names, layers=list(layers), results=results, trajectories=trajs, best=best
    )
