"""Compare models or checkpoints on one objective panel outside any loop (`selflab eval`).

The panel is one `Evaluation` (loops/evaluation.py): held-out tasks of a family (held-out side of
its entity split), an untrained control family, the model as a judge on held-out judge-benchmark
items of code-verified truth, self-reward and length; greedy decoding. So a checkpoint from any
loop is compared with its base on items it never trained on, in one table (and one plot with
`--plot`), with CIs and paired tests (by item id) against the first model.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel
from rich.console import Console
from rich.table import Table

from selflab.console import fit, log
from selflab.loops.benchmark import bench_slice
from selflab.loops.evaluation import Evaluation, GameWinRate, JudgeBench, Length, Scorer, SelfJudged, Verified
from selflab.loops.stats import Estimate, PairedTest, bootstrap_ci, paired_compare
from selflab.loops.truth_meter import Measurement, paired_values
from selflab.models.types import SamplingParams
from selflab.tasks.splits import split_tasks


class ModelEval(BaseModel):
    model: str
    metrics: dict[str, Estimate]
    vs_first: dict[str, PairedTest] = {}
    per_item: dict[str, list[float | bool | None]] = {}
    ids: dict[str, list[str] | None] = {}


def panel(
    family: str = "instructions",
    n: int = 100,
    control: str | None = "arithmetic",
    control_n: int = 40,
    self_judge: bool = True,
    bench_items: int = 16,
    max_new_tokens: int = 96,
    seed: int = 0,
    heldout_fraction: float = 0.3,
    game: str | None = "perudo-small-v0",
    game_opponents: tuple[str, ...] = ("random", "scripted"),
    game_episodes: int = 8,
) -> Evaluation:
    """The objective panel of `selflab eval` as one `Evaluation`: held-out instructions (or
    another family), an untrained control family, judge-benchmark accuracy against code truth,
    win rates against fixed game opponents, then self-reward and length."""
    sets = {"heldout": split_tasks(family, n, seed, True, heldout_fraction)}
    scorers: list[Scorer] = [Verified("heldout", f"{family}_pass_rate", primary=True)]
    if control and control_n:
        sets["control"] = split_tasks(control, control_n, seed, True, 0.5)
        scorers.append(
            Verified("control", f"control_{control}_accuracy", "untrained family, checked by code")
        )
    units, pairs = bench_slice(bench_items, heldout_fraction)
    if units:
        scorers.append(JudgeBench(units, pairs))
    if game and game_episodes:
        scorers.append(GameWinRate(game, list(game_opponents), game_episodes, seed=seed))
    if self_judge:
        scorers.append(SelfJudged("heldout", agreement=False))
    scorers.append(Length("heldout"))
    return Evaluation(
        "selflab-eval", sets, SamplingParams(temperature=0.0, max_new_tokens=max_new_tokens), scorers
    )


def _summary(spec: str, ms: list[Measurement], seed: int) -> ModelEval:
    return ModelEval(
        model=spec,
        metrics={m.name: bootstrap_ci(m.values, seed=seed) for m in ms},
        per_item={m.name: m.values for m in ms},
        ids={m.name: m.ids for m in ms},
    )


def compare_models(
    specs: list[str],
    family: str = "instructions",
    n: int = 100,
    control: str | None = "arithmetic",
    control_n: int = 40,
    self_judge: bool = True,
    max_new_tokens: int = 96,
    seed: int = 0,
    heldout_fraction: float = 0.3,
    bench_items: int = 16,
    game: str | None = "perudo-small-v0",
    game_opponents: tuple[str, ...] = ("random", "scripted"),
    game_episodes: int = 8,
    plot: Path | None = None,
    console: Console | None = None,
) -> list[ModelEval]:
    from selflab.models import clear_cache, load_model

    console = console or Console()
    ev = panel(
        family, n, control, control_n, self_judge, bench_items, max_new_tokens, seed, heldout_fraction,
        game, game_opponents, game_episodes,
    )  # fmt: skip
    results: list[ModelEval] = []
    first: list[Measurement] = []
    for spec in specs:
        clear_cache()
        ms = ev.run(load_model(spec), seed=seed).measurements
        out = _summary(spec, ms, seed)
        if results:
            ref = {m.name: m for m in first}
            for m in ms:
                paired = paired_values(ref[m.name], m) if m.name in ref else None
                if paired is not None:
                    out.vs_first[m.name] = paired_compare(*paired, seed=seed)
        else:
            first = ms
        results.append(out)
    clear_cache()
    table = Table(
        title=f"selflab eval · {ev.name} · " + ", ".join(f"{k}: {len(v)}" for k, v in ev.datasets.items())
    )
    for col in ("model", "metric", "value [95% CI]", "Δ vs first [95% CI]", "p"):
        table.add_column(col, overflow="fold")
    for r in results:
        for k, est in r.metrics.items():
            t = r.vs_first.get(k)
            p = f"{t.p_value:.3g} ({t.test})" if t and t.p_value is not None else "-"
            table.add_row(r.model, k, est.fmt(), t.delta.fmt() if t else "-", p)
    console.print(fit(table))
    if plot is not None:
        plot_panel(results, plot)
        log.print(f"plot: {plot}")
    return results


def plot_panel(results: list[ModelEval], path: Path) -> Path:
    """One figure: every panel metric (one subplot each), a point with its 95% CI per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results[0].metrics) if results else []
    fig, axes = plt.subplots(1, max(1, len(names)), figsize=(3.2 * max(1, len(names)), 3.2), squeeze=False)
    for ax, name in zip(axes[0], names, strict=False):
        for i, r in enumerate(results):
            est = r.metrics.get(name)
            if est is None or est.mean is None:
                continue
            lo = est.mean - (est.lo if est.lo is not None else est.mean)
            hi = (est.hi if est.hi is not None else est.mean) - est.mean
            ax.errorbar([i], [est.mean], yerr=[[lo], [hi]], fmt="o", capsize=4)
        ax.set_title(name, fontsize=8)
        ax.set_xticks(
            range(len(results)), [Path(r.model).name[-18:] for r in results], rotation=30, fontsize=7
        )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
