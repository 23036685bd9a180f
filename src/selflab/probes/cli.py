"""`selflab probe ...`: layer sweeps, generalization matrices and probe-guided best-of-N, each
writing JSON summaries and PNG plots into a run directory."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from selflab.errors import ConfigError
from selflab.results import finish
from selflab.runs.metrics import ProbeMetrics

probe_app = typer.Typer(
    help="Probes on hidden states: layer sweeps, generalization, guided generation.", no_args_is_help=True
)

ModelOpt = Annotated[str, typer.Option("--model", "-m", help="Model spec (local: smollm2-135m or hf:PATH).")]
OutOpt = Annotated[Path, typer.Option("--out", "-o", help="Run directory to write.")]
DatasetsOpt = Annotated[
    str,
    typer.Option(
        help="Comma-separated: cities, neg_cities, numeric, arithmetic, translations, capitals, kg."
    ),
]
ProbesOpt = Annotated[str, typer.Option(help="Comma-separated probe kinds: logistic, mean_diff, mlp.")]
NOpt = Annotated[int, typer.Option("--n", help="Statements per dataset (half true).")]
PositionOpt = Annotated[str, typer.Option(help="Token position: last, answer_last, answer_mean.")]
SeedOpt = Annotated[int, typer.Option(help="Seed for datasets, splits, probes and bootstrap.")]
ResumeOpt = Annotated[bool, typer.Option("--resume", help="Reuse an existing run directory (and its cache).")]
CacheOpt = Annotated[Path | None, typer.Option(help="Activation cache folder (default: <out>/cache).")]


def _split(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


def _config(**kw: object):  # type: ignore[no-untyped-def]
    from pydantic import ValidationError

    from selflab.probes.runner import ProbeConfig

    try:
        return ProbeConfig(**kw)  # type: ignore[arg-type]
    except ValidationError as exc:
        msg = "; ".join(e["msg"] for e in exc.errors())
        raise ConfigError(f"invalid probe options: {msg}", "see `selflab probe --help`") from exc


def _rundir(out: Path, cfg: object, seed: int, resume: bool, command: str):  # type: ignore[no-untyped-def]
    from selflab.runs import RunDir

    return RunDir.create(out, config=cfg, seed=seed, resume=resume, command=command)  # type: ignore[arg-type]


def _pngs(summary: dict) -> list[str]:
    return [f for f in summary.get("files", []) if str(f).endswith(".png")]


def _print(summary: dict) -> None:
    typer.echo(json.dumps(summary, indent=1, default=str))


@probe_app.command("sweep")
def sweep(
    out: OutOpt,
    model: ModelOpt = "smollm2-135m",
    datasets: DatasetsOpt = "cities,neg_cities,numeric,arithmetic,translations",
    probes: ProbesOpt = "logistic,mean_diff,mlp",
    n: NOpt = 400,
    position: PositionOpt = "last",
    mlp_stride: Annotated[int, typer.Option(help="Fit the MLP probe every k-th layer.")] = 3,
    n_boot: Annotated[int, typer.Option(help="Bootstrap resamples for CIs.")] = 1000,
    batch_size: Annotated[int, typer.Option(help="Texts per forward pass.")] = 16,
    cache_dir: CacheOpt = None,
    seed: SeedOpt = 0,
    resume: ResumeOpt = False,
) -> None:
    """Probe every layer on each dataset: AUC/accuracy with 95% CIs per layer (layer_curve.png),
    best layer chosen on validation, adaptive layer selection vs the best fixed layer."""
    from selflab.probes.runner import run_sweep

    cfg = _config(
        model=model,
        datasets=_split(datasets),
        probes=_split(probes),
        n=n,
        position=position,
        mlp_stride=mlp_stride,
        n_boot=n_boot,
        batch_size=batch_size,
        seed=seed,
        cache_dir=str(cache_dir) if cache_dir else None,
    )
    run = _rundir(out, cfg, seed, resume, "probe sweep")
    summary = run_sweep(cfg, run.path, log=lambda m: typer.echo(m, err=True))
    finish(run, [ProbeMetrics(kind="probe_sweep", summary=summary, plots=_pngs(summary))])
    _print(summary)


@probe_app.command("generalize")
def generalize(
    out: OutOpt,
    model: ModelOpt = "smollm2-135m",
    datasets: DatasetsOpt = "cities,neg_cities,numeric,arithmetic,translations",
    probes: ProbesOpt = "logistic,mean_diff,mlp",
    n: NOpt = 400,
    position: PositionOpt = "last",
    mlp_stride: Annotated[int, typer.Option(help="Fit the MLP probe every k-th layer.")] = 3,
    dynamics_stride: Annotated[int, typer.Option(help="Analyse token dynamics every k-th layer.")] = 3,
    dynamics: Annotated[
        bool, typer.Option("--dynamics/--no-dynamics", help="Token dynamics (a second pass).")
    ] = True,
    n_boot: Annotated[int, typer.Option(help="Bootstrap resamples for CIs.")] = 1000,
    batch_size: Annotated[int, typer.Option(help="Texts per forward pass.")] = 16,
    cache_dir: CacheOpt = None,
    seed: SeedOpt = 0,
    resume: ResumeOpt = False,
) -> None:
    """Train on each dataset, test on every other: AUC matrix with CIs (heatmap_<probe>.png),
    ID/OOD gap per probe kind, adaptive layers out of distribution, token dynamics (absolute vs
    relative change)."""
    from selflab.probes.runner import run_generalize

    cfg = _config(
        model=model,
        datasets=_split(datasets),
        probes=_split(probes),
        n=n,
        position=position,
        mlp_stride=mlp_stride,
        dynamics_stride=dynamics_stride,
        dynamics=dynamics,
        n_boot=n_boot,
        batch_size=batch_size,
        seed=seed,
        cache_dir=str(cache_dir) if cache_dir else None,
    )
    run = _rundir(out, cfg, seed, resume, "probe generalize")
    summary = run_generalize(cfg, run.path, log=lambda m: typer.echo(m, err=True))
    finish(run, [ProbeMetrics(kind="probe_generalize", summary=summary, plots=_pngs(summary))])
    _print(summary)


@probe_app.command("guided")
def guided(
    out: OutOpt,
    model: ModelOpt = "smollm2-135m",
    n_questions: Annotated[int, typer.Option(help="Verifiable questions (split into train/test).")] = 150,
    n_samples: Annotated[int, typer.Option(help="Sampled answers per question (N of best-of-N).")] = 5,
    temperature: Annotated[float, typer.Option(help="Sampling temperature.")] = 0.8,
    max_new_tokens: Annotated[int, typer.Option(help="Answer length limit.")] = 32,
    probe: Annotated[str, typer.Option(help="Probe kind: logistic, mean_diff, mlp.")] = "logistic",
    position: PositionOpt = "answer_mean",
    judge: Annotated[bool, typer.Option("--judge/--no-judge", help="Also rank with the RubricJudge.")] = True,
    seed: SeedOpt = 0,
    resume: ResumeOpt = False,
) -> None:
    """Best-of-N by a self-knowledge probe against plain sampling, majority, likelihood and the
    rubric judge, on verifiable questions (accuracy with 95% CIs)."""
    from pydantic import ValidationError

    from selflab.probes.guided import GuidedConfig, run_guided, self_knowledge_statements
    from selflab.probes.pipeline import load_target
    from selflab.probes.plots import guided_bars

    try:
        cfg = GuidedConfig(
            model=model,
            n_questions=n_questions,
            n_samples=n_samples,
            temperature=temperature,
            max_new_tokens=max_new_tokens,
            probe=probe,
            position=position,
            judge=judge,
            seed=seed,
        )
    except ValidationError as exc:
        raise ConfigError(
            f"invalid options: {'; '.join(e['msg'] for e in exc.errors())}", "see --help"
        ) from exc
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
