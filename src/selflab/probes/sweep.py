"""Layer sweep: one probe per (dataset, probe kind, layer), trained on train, with AUC and
accuracy on validation and test (cluster-bootstrap 95% CIs).

The best layer is chosen on *validation* and reported on *test*, so the headline number is not
inflated by picking the maximum of 30 noisy test scores. The fitted probes and their validation /
test scores are kept (`ProbeGrid`) so adaptive selection and the generalization matrix reuse them.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from pydantic import BaseModel

from selflab.probes.metrics import Metric, accuracy_ci, auc, auc_ci
from selflab.probes.models import Probe, make_probe
from selflab.probes.pipeline import DatasetActs


class LayerResult(BaseModel):
    dataset: str
    probe: str
    layer: int
    val_auc: float
    test_auc: Metric
    test_acc: Metric
    fit_seconds: float


class BestLayer(BaseModel):
    dataset: str
    probe: str
    layer: int  # chosen on validation
    val_auc: float
    test_auc: Metric
    test_acc: Metric
    oracle_layer: int  # best on test: an optimistic upper bound, for reference only
    oracle_test_auc: float


class SweepSummary(BaseModel):
    position: str
    layers: list[int]
    results: list[LayerResult]
    best: list[BestLayer]
    seconds: float


@dataclass
class ProbeGrid:
    """Fitted probes and their scores; keys are (dataset, probe kind, layer)."""

    data: dict[str, DatasetActs]
    probes: dict[tuple[str, str, int], Probe] = field(default_factory=dict)
    val_scores: dict[tuple[str, str, int], np.ndarray] = field(default_factory=dict)
    test_scores: dict[tuple[str, str, int], np.ndarray] = field(default_factory=dict)
    fit_seconds: dict[tuple[str, str, int], float] = field(default_factory=dict)

    def layers_for(self, dataset: str, kind: str) -> list[int]:
        return sorted(lay for (d, k, lay) in self.probes if d == dataset and k == kind)

    def kinds(self) -> list[str]:
        return sorted({k for (_, k, _) in self.probes})


def probe_layers(num_layers: int, kind: str, mlp_stride: int = 1) -> list[int]:
    """Layers to probe: every layer (0 = embeddings .. L); the slower MLP every `mlp_stride`
    layers (always including the last)."""
    all_layers = list(range(num_layers + 1))
    if kind != "mlp" or mlp_stride <= 1:
        return all_layers
    picked = all_layers[::mlp_stride]
    return picked if picked[-1] == num_layers else [*picked, num_layers]


def fit_grid(
    data: dict[str, DatasetActs],
    kinds: Sequence[str] = ("logistic", "mean_diff"),
    mlp_stride: int = 3,
    seed: int = 0,
    progress: bool = False,
) -> ProbeGrid:
    grid = ProbeGrid(data=data)
    for name, d in data.items():
        num_layers = d.layers[-1]
        for kind in kinds:
            t_kind = time.perf_counter()
            for layer in probe_layers(num_layers, kind, mlp_stride):
                if layer not in d.layers:
                    continue
                t0 = time.perf_counter()
                probe = make_probe(kind, seed=seed).fit(d.train.layer(layer, d.layers), d.train.y)
                key = (name, kind, layer)
                grid.fit_seconds[key] = time.perf_counter() - t0
                grid.probes[key] = probe
                grid.val_scores[key] = probe.score(d.val.layer(layer, d.layers))
                grid.test_scores[key] = probe.score(d.test.layer(layer, d.layers))
            if progress:
                print(
                    f"  fitted {kind:9s} on {name:12s} in {time.perf_counter() - t_kind:5.1f}s",
                    file=sys.stderr,  # progress: stdout holds the command's JSON result
                    flush=True,
                )
    return grid


def summarize(grid: ProbeGrid, n_boot: int = 1000, seed: int = 0) -> SweepSummary:
    t0 = time.perf_counter()
    results: list[LayerResult] = []
    best: list[BestLayer] = []
    position = next(iter(grid.data.values())).position
    for name, d in grid.data.items():
        for kind in grid.kinds():
            rows = []
            for layer in grid.layers_for(name, kind):
                key = (name, kind, layer)
                rows.append(
                    LayerResult(
                        dataset=name,
                        probe=kind,
                        layer=layer,
                        val_auc=auc(grid.val_scores[key], d.val.y),
                        test_auc=auc_ci(grid.test_scores[key], d.test.y, d.test.entities, n_boot, seed),
                        test_acc=accuracy_ci(
                            grid.test_scores[key], d.test.y, d.test.entities, n_boot=n_boot, seed=seed
                        ),
                        fit_seconds=grid.fit_seconds[key],
                    )
                )
            if not rows:
                continue
            results += rows
            chosen = max(rows, key=lambda r: (r.val_auc, -r.layer))
            oracle = max(rows, key=lambda r: r.test_auc.value)  # type: ignore[arg-type,return-value]
            best.append(
                BestLayer(
                    dataset=name,
                    probe=kind,
                    layer=chosen.layer,
                    val_auc=chosen.val_auc,
                    test_auc=chosen.test_auc,
                    test_acc=chosen.test_acc,
                    oracle_layer=oracle.layer,
                    oracle_test_auc=oracle.test_auc.value,
                )
            )
    layers = next(iter(grid.data.values())).layers
    return SweepSummary(
        position=position, layers=layers, results=results, best=best, seconds=time.perf_counter() - t0
    )


def best_layer(summary: SweepSummary, dataset: str, probe: str) -> int:
    for b in summary.best:
        if b.dataset == dataset and b.probe == probe:
            return b.layer
    raise KeyError((dataset, probe))
