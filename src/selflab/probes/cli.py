"""`selflab probe ...`: layer sweeps, generalization matrices and probe-guided best-of-N, each
writing JSON summaries and PNG plots into a run directory."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from selflab.cli_options import config_options, default_out
from selflab.errors import ConfigError
from selflab.probes.guided import GuidedConfig
from selflab.probes.runner import ProbeConfig
from selflab.results import finish
from selflab.runs.metrics import ProbeMetrics

probe_app = typer.Typer(
    help="Probes on hidden states: layer sweeps, generalization, guided generation.", no_args_is_help=True
)


def _split(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


def _rundir(out: Path | None, cfg: object, seed: int, resume: bool, command: str):  # type: ignore[no-untyped-def]
    from selflab.runs import RunDir

    out = out or default_out(command.removeprefix("selflab ").replace(" ", "-"))
    return RunDir.create(out, config=cfg, seed=seed, resume=resume, command=command)  # type: ignore[arg-type]


def _pngs(summary: dict) -> list[str]:
    return [f for f in summary.get("files", []) if str(f).endswith(".png")]


def _print(summary: dict) -> None:
    typer.echo(json.dumps(summary, indent=1, default=str))


@probe_app.command("sweep")
@config_options(ProbeConfig, skip=("dynamics", "dynamics_stride"))
def sweep(cfg: ProbeConfig, out: Path | None, resume: bool) -> None:
    """Probe every layer on each dataset: AUC/accuracy with 95% CIs per layer (layer_curve.png),
    best layer chosen on validation, adaptive layer selection vs the best fixed layer."""
    from selflab.probes.runner import run_sweep

    run = _rundir(out, cfg, cfg.seed, resume, "probe sweep")
    summary = run_sweep(cfg, run.path, log=lambda m: typer.echo(m, err=True))
    finish(run, [ProbeMetrics(kind="probe_sweep", summary=summary, plots=_pngs(summary))])
    _print(summary)


@probe_app.command("generalize")
@config_options(ProbeConfig)
def generalize(cfg: ProbeConfig, out: Path | None, resume: bool) -> None:
    """Train on each dataset, test on every other: AUC matrix with CIs (heatmap_<probe>.png),
    ID/OOD gap per probe kind, adaptive layers out of distribution, token dynamics (absolute vs
    relative change)."""
    from selflab.probes.runner import run_generalize

    run = _rundir(out, cfg, cfg.seed, resume, "probe generalize")
    summary = run_generalize(cfg, run.path, log=lambda m: typer.echo(m, err=True))
    finish(run, [ProbeMetrics(kind="probe_generalize", summary=summary, plots=_pngs(summary))])
    _print(summary)


@probe_app.command("guided")
@config_options(
    GuidedConfig, flags={"n_questions": ["--n", "-n"]}, deprecated={"n_questions": ["--n-questions"]}
)
def guided(cfg: GuidedConfig, out: Path | None, resume: bool) -> None:
    """Best-of-N by a self-knowledge probe against plain sampling, majority, likelihood and the
    rubric judge, on verifiable questions (accuracy with 95% CIs)."""
    from selflab.probes.guided import run_guided, self_knowledge_statements
    from selflab.probes.pipeline import load_target
    from selflab.probes.plots import guided_bars

    seed, model, position = cfg.seed, cfg.model, cfg.position
    if position not in ("last", "answer_last", "answer_mean"):
        raise ConfigError(f"unknown position {position!r}", "use last, answer_last or answer_mean")
    run = _rundir(out, cfg, seed, resume, "probe guided")
    target = load_target(model)
    summary, records = run_guided(cfg, target, log=lambda m: typer.echo(m, err=True))
    run.records("guided_samples").extend(records)
    rows = [
        {
            "text": s.text,
            "label": s.label,
            "question_id": s.entity,
            "span_start": s.span[0],
            "span_end": s.span[1],
        }
        for s in self_knowledge_statements(records, target)
    ]
    if rows:
        run.export_parquet("self_knowledge", rows)
    (run.path / "guided.json").write_text(summary.model_dump_json(indent=1), encoding="utf-8")
    guided_bars(summary, run.path / "guided.png")
    finish(
        run,
        [ProbeMetrics(kind="probe_guided", summary=summary.model_dump(mode="json"), plots=["guided.png"])],
    )
    _print(summary.model_dump(mode="json"))


def register(app: typer.Typer) -> None:
    """Add the `probe` sub-app to the main `selflab` command."""
    app.add_typer(probe_app, name="probe")
