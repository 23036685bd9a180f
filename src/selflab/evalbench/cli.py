"""`selflab bench judges`: run the judge benchmark and print a summary table."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from selflab.cli_options import config_options, default_out
from selflab.console import fit
from selflab.evalbench.config import BenchConfig
from selflab.execution.cli import ExecutorOpt, RayAddressOpt, WorkersOpt, check_flags, open_executor

bench_app = typer.Typer(
    help="Benchmarks that measure selflab's own components against ground truth.", no_args_is_help=True
)


def _fmt(m: dict | None) -> str:
    if not m or m.get("value") is None:
        return "-"
    v = m["value"]
    lo, hi = m.get("low", m.get("ci_low")), m.get("high", m.get("ci_high"))
    if lo is None or hi is None:
        return f"{v:.2f}"
    return f"{v:.2f} [{lo:.2f}, {hi:.2f}]"


def summary_tables(summary: dict[str, Any]) -> list[Table]:
    """Rich tables for a summary dict: headline metrics per judge, flip rates, majority study."""
    head = Table(
        title=f"Judge benchmark on {summary['model_spec']} ({summary['n_items']} items, "
        f"{summary['n_units']} units, {summary['elapsed_s']} s)"
    )
    for col in ("judge", "metric", "value [95% CI]", "n"):
        head.add_column(col)
    rows = [
        ("pointwise", "accuracy", "accuracy (score > mid) vs truth"),
        ("pointwise", "cohen_kappa", "Cohen's kappa vs truth"),
        ("pointwise", "spearman", "Spearman(score, truth)"),
        ("pointwise", "kendall", "Kendall(score, truth)"),
        ("pairs_from_scores", "accuracy", "pair accuracy from scores (ties wrong)"),
        ("pairs_from_scores", "accuracy_no_ties", "pair accuracy from scores, no ties"),
        ("pairwise", "accuracy", "pair accuracy (ties wrong)"),
        ("pairwise", "accuracy_no_ties", "pair accuracy, no ties"),
        ("pairwise", "position_consistency", "position consistency"),
        ("pairwise", "preference_fairness", "preference fairness"),
        ("pairwise", "length_bias", "length-bias coefficient"),
        ("pairwise", "lc_accuracy", "length-controlled accuracy"),
    ]
    for kind, js in summary["judges"].items():
        first = True
        for section, key, label in rows:
            m = js.get(section, {}).get(key)
            if m is None:
                continue
            head.add_row(escape(kind) if first else "", label, _fmt(m), str(m.get("n", "")))
            first = False
        for proto, m in js.get("self_preference", {}).items():
            head.add_row("", f"self-preference ({proto})", _fmt(m), str(m.get("n", "")))
        head.add_row(
            "", "parse-failure rate", _fmt(js["parse_failure_rate"]), str(js["parse_failure_rate"]["n"])
        )
        inj = js.get("injection") or {}
        if inj.get("n"):
            head.add_row("", "injection flip rate", _fmt(inj["flip_rate"]), str(inj["flip_rate"]["n"]))
        chance = js.get("pointwise", {}).get("chance")
        if chance is not None:
            head.add_row("", "chance (majority class, pointwise)", f"{chance:.2f}", "")
    flips = Table(
        title="Flip rate per perturbation (expect 'same': lower is better; 'change': higher is better)"
    )
    for col in ("judge", "perturbation", "expect", "protocol", "flip rate [95% CI]", "n"):
        flips.add_column(col)
    for kind, js in summary["judges"].items():
        for p, by in js.get("perturbations", {}).items():
            for proto, e in by.items():
                flips.add_row(
                    escape(kind), p, e["expect"], proto, _fmt(e["flip_rate"]), str(e["flip_rate"]["n"])
                )
    tables = [head, flips]
    maj = summary.get("majority")
    if maj:
        t = Table(
            title=f"Majority vote vs verified truth ({maj['n_candidates']} candidates; chance {maj['chance']:.2f})"
        )
        t.add_column("jury size")
        t.add_column("seeds [95% CI]")
        t.add_column("personas [95% CI]")
        for size, s, p in zip(maj["sizes"], maj["seeds"], maj["personas"], strict=True):
            t.add_row(str(size), _fmt(s), _fmt(p))
        tables.append(t)
    return tables


@config_options(
    BenchConfig,
    flags={"judges": ["--judge", "-j"], "limit": ["--n", "-n"]},
    deprecated={"limit": ["--limit"]},
    repeat=("judges",),
)
def judges(
    config: BenchConfig,
    out: Path | None,
    resume: bool,
    executor: ExecutorOpt = "local",
    workers: WorkersOpt = None,
    ray_address: RayAddressOpt = None,
) -> None:
    """Measure judges against code-verified truth and under perturbations."""
    from selflab.evalbench.runner import run_bench

    model = config.model
    out = out or default_out("bench-judges")
    check_flags(executor, workers, ray_address)
    with open_executor(executor, workers, ray_address, models=[model]) as ex:
        summary = run_bench(config, out, resume=resume, executor=ex)
    from selflab.results import finish
    from selflab.runs import RunDir

    finish(RunDir.open(out))
    console = Console()
    for t in summary_tables(summary):
        console.print(fit(t))
    Console(stderr=True).print(
        f"records: {out}/records/judgments.jsonl  summary: {out}/summary.json"
        + (f"  plot: {out}/{summary['majority']['plot']}" if summary.get("majority") else "")
    )


def register(app: typer.Typer) -> None:
    """Add the `bench` sub-app with its `judges` command to the main CLI."""
    bench_app.command("judges")(judges)
    app.add_typer(bench_app, name="bench")
