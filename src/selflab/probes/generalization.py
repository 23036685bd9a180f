"""Generalization matrix: train a probe on each dataset, test it on every dataset.

For each probe kind and source dataset the layer is the one with the best validation AUC on the
source (no peeking at any test set). Cell (i, j) is the test AUC on dataset j of the probe trained
on dataset i, with a cluster-bootstrap 95% CI. The diagonal is in-distribution (ID), the rest is
out-of-distribution (OOD); the ID - OOD gap is reported per probe kind.
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel

from selflab.probes.metrics import Metric, auc, auc_ci
from selflab.probes.sweep import ProbeGrid


class GeneralizationMatrix(BaseModel):
    probe: str
    datasets: list[str]
    layers: dict[str, int]  # source dataset -> layer used
    auc: list[list[Metric]]  # auc[i][j]: trained on datasets[i], tested on datasets[j]
    mean_id: float
    mean_ood: float
    gap: float
    worst_ood: tuple[str, str, float]

    def values(self) -> np.ndarray:
        return np.array([[c.value for c in row] for row in self.auc])


def _chosen_layer(grid: ProbeGrid, source: str, kind: str) -> int:
    d = grid.data[source]
    layers = grid.layers_for(source, kind)
    vals = [auc(grid.val_scores[(source, kind, lay)], d.val.y) for lay in layers]
    return layers[int(np.nanargmax(vals))]


def generalization_matrix(
    grid: ProbeGrid, kind: str, n_boot: int = 1000, seed: int = 0
) -> GeneralizationMatrix:
    names = list(grid.data)
    layers = {s: _chosen_layer(grid, s, kind) for s in names}
    rows: list[list[Metric]] = []
    for s in names:
        probe = grid.probes[(s, kind, layers[s])]
        row = []
        for t in names:
            tgt = grid.data[t]
            scores = probe.score(tgt.test.layer(layers[s], tgt.layers))
            row.append(auc_ci(scores, tgt.test.y, tgt.test.entities, n_boot=n_boot, seed=seed))
        rows.append(row)
    m = np.array([[c.value for c in r] for r in rows])
    n = len(names)
    off = ~np.eye(n, dtype=bool)
    mean_id = float(np.nanmean(np.diag(m)))
    mean_ood = float(np.nanmean(m[off])) if n > 1 else float("nan")
    if n > 1:
        masked = np.where(off, m, np.inf)
        i, j = np.unravel_index(int(np.argmin(masked)), m.shape)
        worst = (names[i], names[j], float(m[i, j]))
    else:
        worst = ("", "", float("nan"))
    return GeneralizationMatrix(
        probe=kind,
        datasets=names,
        layers=layers,
        auc=rows,
        mean_id=mean_id,
        mean_ood=mean_ood,
        gap=mean_id - mean_ood,
        worst_ood=worst,
    )
