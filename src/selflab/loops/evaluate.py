"""Compare models or checkpoints on the objective measures outside any loop (`selflab eval`).

The same held-out split as `verified-sft` (tasks on held-out topics), greedy decoding, so a
checkpoint from a loop is compared with its base on items it never trained on.
"""

from __future__ import annotations

from pydantic import BaseModel
from rich.console import Console
from rich.table import Table

from selflab.loops.measures import Answer, sample_answers, self_judge, verify_answers
from selflab.loops.stats import Estimate, PairedTest, bootstrap_ci, paired_compare
from selflab.loops.verified_sft import TaskFamily, split_tasks
from selflab.models.types import SamplingParams


class ModelEval(BaseModel):
    model: str
    metrics: dict[str, Estimate]
    vs_first: dict[str, PairedTest] = {}
    per_item: dict[str, list[float | bool | None]] = {}


def compare_models(
    specs: list[str],
    family: TaskFamily = "instructions",
    n: int = 100,
    control: TaskFamily | None = "arithmetic",
    control_n: int = 40,
    self_judge: bool = True,
    max_new_tokens: int = 96,
    seed: int = 0,
    heldout_fraction: float = 0.3,
    console: Console | None = None,
) -> list[ModelEval]:
    from selflab.models import clear_cache, load_model

    console = console or Console()
    heldout = split_tasks(family, n, seed, True, heldout_fraction)
    ctrl = split_tasks(control, control_n, seed, True, 0.5) if control and control_n else []
    greedy = SamplingParams(temperature=0.0, max_new_tokens=max_new_tokens)
    results: list[ModelEval] = []
    for spec in specs:
        clear_cache()
        model = load_model(spec)
        answers = verify_answers(heldout + ctrl, sample_answers(model, heldout + ctrl, 1, greedy, 0))
        main, rest = answers[: len(heldout)], answers[len(heldout) :]
        per: dict[str, list[float | bool | None]] = {f"{family}_pass_rate": [bool(a.verified) for a in main]}
        if rest:
            per[f"control_{control}_accuracy"] = [bool(a.verified) for a in rest]
        if self_judge:
            judged: list[Answer] = self_judge_answers(model, main, seed)
            per["self_reward"] = [a.self_score for a in judged]
        per["response_tokens"] = [float(a.completion_tokens) for a in main]
        ev = ModelEval(
            model=spec, metrics={k: bootstrap_ci(v, seed=seed) for k, v in per.items()}, per_item=per
        )
        if results:
            first = results[0]
            ev.vs_first = {
                k: paired_compare(first.per_item[k], v, seed=seed)
                for k, v in per.items()
                if k in first.per_item
            }
        results.append(ev)
    clear_cache()
    table = Table(
        title=f"selflab eval · {n} held-out {family} tasks" + (f" + {control_n} {control}" if ctrl else "")
    )
    table.add_column("model")
    table.add_column("metric")
    table.add_column("value [95% CI]")
    table.add_column("Δ vs first [95% CI]")
    table.add_column("p")
    for ev in results:
        for k, est in ev.metrics.items():
            t = ev.vs_first.get(k)
            table.add_row(
                ev.model,
                k,
                est.fmt(),
                t.delta.fmt() if t else "-",
                f"{t.p_value:.3g} ({t.test})" if t and t.p_value is not None else "-",
            )
    console.print(table)
    return results


def self_judge_answers(model: object, answers: list[Answer], seed: int) -> list[Answer]:
    return self_judge(model, answers, 1, seed)  # type: ignore[arg-type]
