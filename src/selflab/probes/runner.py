"""The probe experiments end to end, each writing JSON summaries and PNG plots into a run
directory. The CLI is a thin layer over these functions; notebooks can call them directly."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, field_validator

from selflab.errors import ConfigError
from selflab.probes import datasets as ds
from selflab.probes import plots
from selflab.probes.adaptive import adaptive_summary
from selflab.probes.dynamics import analyze, seq_data
from selflab.probes.generalization import generalization_matrix
from selflab.probes.models import PROBE_KINDS
from selflab.probes.pipeline import Target, activations_for, build_datasets, load_target, prepare
from selflab.probes.sweep import ProbeGrid, fit_grid, summarize


class ProbeConfig(BaseModel):
    """Settings of `selflab probe sweep|generalize`; the command-line flags are generated from it."""

    model: str = "smollm2-135m"
    datasets: list[str] = Field(
        default_factory=lambda: list(ds.DEFAULT_DATASETS),
        description="Datasets: cities, neg_cities, numeric, arithmetic, translations, capitals, kg.",
    )
    n: int = Field(400, ge=8, description="Statements per dataset (half true, half false).")
    position: str = Field("last", description="Token position: last, answer_last, answer_mean.")
    probes: list[str] = Field(
        default_factory=lambda: ["logistic", "mean_diff", "mlp"],
        description="Probe kinds: logistic, mean_diff, mlp.",
    )
    mlp_stride: int = Field(3, ge=1, description="Fit the MLP probe every k-th layer.")
    seed: int = 0
    n_boot: int = Field(1000, ge=50, description="Bootstrap resamples for CIs.")
    batch_size: int = Field(16, ge=1, description="Texts per forward pass.")
    cache_dir: str | None = Field(None, description="Activation cache folder (default: <run dir>/cache).")
    dynamics_stride: int = Field(3, ge=1, description="Analyse token dynamics every k-th layer.")
    dynamics: bool = Field(True, description="Token dynamics (a second pass that keeps every answer token).")

    @field_validator("probes")
    @classmethod
    def _kinds(cls, v: list[str]) -> list[str]:
        bad = [k for k in v if k not in PROBE_KINDS]
        if bad or not v:
            raise ValueError(f"unknown probe kinds {bad}; choose from {PROBE_KINDS}")
        return v

    @field_validator("datasets")
    @classmethod
    def _datasets(cls, v: list[str]) -> list[str]:
        bad = [d for d in v if d not in ds.BUILDERS]
        if bad or not v:
            raise ValueError(f"unknown datasets {bad}; choose from {list(ds.BUILDERS)}")
        return v

    @field_validator("position")
    @classmethod
    def _position(cls, v: str) -> str:
        if v not in ("last", "answer_last", "answer_mean"):
            raise ValueError("position must be last, answer_last or answer_mean")
        return v


def _write_json(path: Path, obj: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = obj.model_dump(mode="json") if isinstance(obj, BaseModel) else obj
    path.write_text(json.dumps(data, indent=1, ensure_ascii=False, default=str), encoding="utf-8")
    return path


def _cache_dir(cfg: ProbeConfig, out: Path) -> Path:
    return Path(cfg.cache_dir) if cfg.cache_dir else out / "cache"


def _grid(
    cfg: ProbeConfig, out: Path, target: Target | None, log: Any
) -> tuple[Target, ProbeGrid, dict[str, float]]:
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    target = target or load_target(cfg.model)
    timings["load_model"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    data = build_datasets(cfg.datasets, cfg.n, cfg.seed)
    acts = prepare(target, data, cfg.position, cfg.seed, _cache_dir(cfg, out), batch_size=cfg.batch_size)
    timings["activations"] = time.perf_counter() - t0
    log(f"activations ready for {', '.join(cfg.datasets)} ({timings['activations']:.1f}s)")
    t0 = time.perf_counter()
    grid = fit_grid(acts, kinds=cfg.probes, mlp_stride=cfg.mlp_stride, seed=cfg.seed, progress=False)
    timings["fit_probes"] = time.perf_counter() - t0
    log(f"fitted {len(grid.probes)} probes ({timings['fit_probes']:.1f}s)")
    return target, grid, timings


def run_sweep(cfg: ProbeConfig, out: Path, target: Target | None = None, log: Any = print) -> dict[str, Any]:
    """Layer sweep + adaptive layer selection (in distribution). Writes sweep.json,
    adaptive.json, layer_curve.png."""
    t_all = time.perf_counter()
    target, grid, timings = _grid(cfg, out, target, log)
    t0 = time.perf_counter()
    summary = summarize(grid, n_boot=cfg.n_boot, seed=cfg.seed)
    adaptive = {
        k: adaptive_summary(grid, kind=k, ood=False, n_boot=cfg.n_boot, seed=cfg.seed) for k in cfg.probes
    }
    timings["evaluate"] = time.perf_counter() - t0
    _write_json(out / "sweep.json", summary)
    _write_json(out / "adaptive.json", {k: v.model_dump(mode="json") for k, v in adaptive.items()})
    plots.layer_curve(summary, out / "layer_curve.png", title=f"{target.name}: truth probes per layer")
    timings["total"] = time.perf_counter() - t_all
    headline = {
        "model": target.name,
        "position": cfg.position,
        "best": [
            {
                "dataset": b.dataset,
                "probe": b.probe,
                "layer_chosen_on_val": b.layer,
                "test_auc": b.test_auc.fmt(),
                "test_acc": b.test_acc.fmt(),
                "oracle_layer": b.oracle_layer,
            }
            for b in summary.best
        ],
        "mean_curve": _mean_curve(summary),
        "adaptive_mean_test_auc": {k: v.mean_id for k, v in adaptive.items()},
        "timings_s": {k: round(v, 1) for k, v in timings.items()},
        "files": ["sweep.json", "adaptive.json", "layer_curve.png"],
    }
    _write_json(out / "sweep_summary.json", headline)
    return headline


def _dynamics(cfg: ProbeConfig, out: Path, target: Target) -> Any:
    num_layers = target.num_layers
    dyn_layers = sorted(set(range(0, num_layers + 1, cfg.dynamics_stride)) | {num_layers})
    data = build_datasets(cfg.datasets, cfg.n, cfg.seed)
    seqs = {}
    for name, d in data.items():
        acts = activations_for(
            target, d, ["all"], _cache_dir(cfg, out), layers=dyn_layers, batch_size=cfg.batch_size
        )
        seqs[name] = seq_data(name, d, acts["all"].sequences(), dyn_layers, cfg.seed)
    return analyze(seqs, seed=cfg.seed)


def _mean_curve(summary: Any) -> dict[str, Any]:
    """Per probe kind: test AUC per layer averaged over datasets, and the layer with the best mean
    *validation* AUC (one layer for all datasets, chosen without test data)."""
    import numpy as np

    out: dict[str, Any] = {}
    for kind in sorted({r.probe for r in summary.results}):
        rows = [r for r in summary.results if r.probe == kind]
        layers = sorted({r.layer for r in rows})
        test = {lay: float(np.mean([r.test_auc.value for r in rows if r.layer == lay])) for lay in layers}
        val = {lay: float(np.mean([r.val_auc for r in rows if r.layer == lay])) for lay in layers}
        best = max(layers, key=lambda lay: val[lay])
        out[kind] = {
            "layer_chosen_on_mean_val": best,
            "mean_test_auc_at_that_layer": round(test[best], 4),
            "mean_test_auc_per_layer": {lay: round(v, 4) for lay, v in test.items()},
        }
    return out


def run_generalize(
    cfg: ProbeConfig, out: Path, target: Target | None = None, log: Any = print
) -> dict[str, Any]:
    """Generalization matrix per probe kind (heatmaps), adaptive selection out of distribution,
    and token dynamics (absolute vs relative). Writes generalization.json,
    heatmap_<probe>.png, adaptive_ood.json, dynamics.json, dynamics.png."""
    t_all = time.perf_counter()
    if len(cfg.datasets) < 2:
        raise ConfigError(
            "a generalization matrix needs at least two datasets", "pass two or more --datasets"
        )
    target, grid, timings = _grid(cfg, out, target, log)
    t0 = time.perf_counter()
    matrices = {k: generalization_matrix(grid, k, n_boot=cfg.n_boot, seed=cfg.seed) for k in cfg.probes}
    for k, m in matrices.items():
        plots.heatmap(m, out / f"heatmap_{k}.png")
    _write_json(out / "generalization.json", {k: m.model_dump(mode="json") for k, m in matrices.items()})
    adaptive = adaptive_summary(
        grid,
        kind="logistic" if "logistic" in cfg.probes else cfg.probes[0],
        ood=True,
        n_boot=cfg.n_boot,
        seed=cfg.seed,
    )
    _write_json(out / "adaptive_ood.json", adaptive)
    timings["matrix_and_adaptive"] = time.perf_counter() - t0

    dynamics = None
    if cfg.dynamics:
        t0 = time.perf_counter()
        dynamics = _dynamics(cfg, out, target)
        _write_json(out / "dynamics.json", dynamics)
        plots.dynamics_plot(dynamics, out / "dynamics.png")
        timings["dynamics"] = time.perf_counter() - t0
    timings["total"] = time.perf_counter() - t_all
    headline = {
        "model": target.name,
        "position": cfg.position,
        "matrix": {
            k: {
                "mean_id": round(m.mean_id, 3),
                "mean_ood": round(m.mean_ood, 3),
                "gap": round(m.gap, 3),
                "worst_ood": m.worst_ood,
                "layers": m.layers,
            }
            for k, m in matrices.items()
        },
        "adaptive": {"probe": adaptive.probe, "mean_id": adaptive.mean_id, "mean_ood": adaptive.mean_ood},
        "dynamics": dynamics.best if dynamics else "skipped (--no-dynamics)",
        "timings_s": {k: round(v, 1) for k, v in timings.items()},
        "files": ["generalization.json", "adaptive_ood.json"]
        + (["dynamics.json", "dynamics.png"] if dynamics else [])
        + [f"heatmap_{k}.png" for k in matrices],
    }
    _write_json(out / "generalize_summary.json", headline)
    return headline
