"""The step-level track of the judge benchmark: does a judge find the first wrong step?

Items are held-out problems with (a) gold solutions carrying a code-made mistake at a known step
(or none), as in ProcessBench's controlled errors, and (b) solutions written by a model and
labelled by code. Model solutions where no one can tell the first error (empty, no step, an
unparsable step before any wrong one) are not benchmark items; they go to records/dropped.jsonl
and are counted by reason in the summary.

`run_step_bench` writes a run directory (run.yaml, records/items.jsonl, records/judge-<kind>-<family>.jsonl,
metrics.jsonl, summary.json) and resumes stage by stage.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from rich.console import Console
from rich.table import Table

from selflab.console import fit
from selflab.models.types import GenerationRequest, LanguageModel, Message, SamplingParams
from selflab.runs import RunDir
from selflab.stepwise import FAMILIES, get_family
from selflab.stepwise.judges import StepJudgment, make_step_judge
from selflab.stepwise.metrics import Metric, judge_metrics
from selflab.stepwise.types import BenchSolution


class StepBenchConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field("smollm2-135m", description="Model spec (judge and solution writer).")
    families: list[str] = Field(default_factory=lambda: sorted(FAMILIES), description="Problem families.")
    injected_per_family: int = Field(
        20, ge=0, description="held-out problems with a code-made mistake (or none)"
    )
    correct_fraction: float = Field(0.3, ge=0.0, le=1.0, description="share of injected items left correct")
    model_written_per_family: int = Field(8, ge=0, description="held-out problems the model solves itself")
    judges: list[Literal["llm", "likelihood"]] = Field(
        default_factory=lambda: ["llm", "likelihood"], description="Step judges: llm, likelihood."
    )
    threshold: float = Field(
        0.5, gt=0.0, lt=1.0, description="Step score below which a step is called wrong."
    )
    temperature: float = Field(0.7, ge=0.0, description="Sampling temperature of model-written solutions.")
    max_new_tokens: int = Field(120, ge=8, description="Tokens per model-written solution.")
    constrain: bool = Field(False, description="constrain the LLM judge's verdict (backends that honour it)")
    seed: int = Field(0, description="Seed of every random choice (same seed, same result).")


def generate_solutions(
    model: LanguageModel,
    prompts: Sequence[Sequence[Message]],
    sampling: SamplingParams,
    seed: int,
    n: int = 1,
) -> list[list[str]]:
    """`n` completions per chat prompt in one batched call; request i gets seed `seed + i`."""
    reqs = []
    for p in prompts:
        for _ in range(n):
            s = sampling if sampling.greedy else sampling.model_copy(update={"seed": seed + len(reqs)})
            reqs.append(GenerationRequest(messages=tuple(p), sampling=s))
    outs = model.generate(reqs) if reqs else []
    texts = [o.text if not o.error else "" for o in outs]
    return [texts[i * n : (i + 1) * n] for i in range(len(prompts))]


def injected_items(family: str, n: int, seed: int, correct_fraction: float) -> list[BenchSolution]:
    """`n` held-out problems, each with a gold solution that is either left correct or given a
    mistake at a uniformly drawn step (code checks the first error lands there)."""
    fam = get_family(family)
    rng = random.Random(f"inject|{family}|{seed}")
    out = []
    for p in fam.problems(n, seed, "heldout"):
        at, kind, text = -1, "", fam.gold_text(p)
        if rng.random() >= correct_fraction:
            at = rng.randrange(len(p.gold_steps))
            made = fam.injected(p, at, rng)
            if made is None:
                at = -1
            else:
                text, kind = made
        lab = fam.label(p, text)
        out.append(
            BenchSolution(
                id=f"{p.id}:inj", problem=p, labelled=lab, origin="injected", injected_at=at, error_kind=kind
            )
        )
    return out


def model_items(
    model: LanguageModel, family: str, n: int, seed: int, sampling: SamplingParams
) -> tuple[list[BenchSolution], list[BenchSolution]]:
    """The model's own solutions to held-out problems, labelled by code: (kept, dropped). A
    solution is kept when its first error is a step code read and found wrong (or it has no
    error); it is dropped (and recorded with the reason in `error_kind`) when it is empty, has no
    step, or meets an unparsable step before any wrong one, since then nobody knows where the
    first error is. Unparsable steps after the first error stay, unscored by step metrics."""
    fam = get_family(family)
    problems = fam.problems(n, seed + 7919, "heldout")
    texts = generate_solutions(model, [fam.messages(p) for p in problems], sampling, seed)
    kept, dropped = [], []
    for p, (text,) in zip(problems, texts, strict=True):
        lab = fam.label(p, text)
        item = BenchSolution(id=f"{p.id}:model", problem=p, labelled=lab, origin="model")
        fe = lab.first_error
        if lab.status in ("empty", "no_steps"):
            dropped.append(item.model_copy(update={"error_kind": lab.status}))
        elif fe >= 0 and lab.steps[fe].ok is None:
            dropped.append(item.model_copy(update={"error_kind": "unparsable_before_first_error"}))
        else:
            kept.append(item)
    return kept, dropped


def judge_items(judge: object, items: Sequence[BenchSolution]) -> list[StepJudgment]:
    """Run a step judge family by family (the judge prompt names the family's step format)."""
    by_id: dict[str, StepJudgment] = {}
    for family in sorted({it.problem.family for it in items}):
        group = [it for it in items if it.problem.family == family]
        rows = [(it.id, it.problem, [s.text for s in it.labelled.steps]) for it in group]
        for j in judge.judge(get_family(family), rows):  # type: ignore[attr-defined]
            by_id[j.item_id] = j
    return [by_id[it.id] for it in items]


def breakdown(
    items: Sequence[BenchSolution], judgments: Sequence[StepJudgment], threshold: float, seed: int
) -> dict[str, dict[str, Metric]]:
    """Metrics overall, per family and per origin."""
    groups: dict[str, list[int]] = {"all": list(range(len(items)))}
    for i, it in enumerate(items):
        groups.setdefault(f"family={it.problem.family}", []).append(i)
        groups.setdefault(f"origin={it.origin}", []).append(i)
    return {
        g: judge_metrics([items[i] for i in idx], [judgments[i] for i in idx], threshold, seed)
        for g, idx in groups.items()
    }


def run_step_bench(
    cfg: StepBenchConfig, out: str | Path, resume: bool = False, console: Console | None = None
) -> dict:
    """Build items, run every judge, write metrics and a summary; resumable by stage."""
    from selflab.models import load_model

    console = console or Console()
    for f in cfg.families:
        get_family(f)
    run = RunDir.create(out, config=cfg, seed=cfg.seed, resume=resume, command="selflab bench steps")
    items_log = run.records("items")
    model = None
    with run.stage("items") as st:
        if not st.done:
            items_log.path.unlink(missing_ok=True)
            items: list[BenchSolution] = []
            dropped: Counter[str] = Counter()
            dropped_log = run.records("dropped")
            dropped_log.path.unlink(missing_ok=True)
            sampling = SamplingParams(
                temperature=cfg.temperature, top_p=0.95, max_new_tokens=cfg.max_new_tokens
            )
            for fi, f in enumerate(cfg.families):
                items += injected_items(f, cfg.injected_per_family, cfg.seed, cfg.correct_fraction)
                if cfg.model_written_per_family:
                    model = model or load_model(cfg.model)
                    got, lost = model_items(
                        model, f, cfg.model_written_per_family, cfg.seed + 1000 * fi, sampling
                    )
                    items += got
                    dropped_log.extend(lost)
                    dropped.update(f"{f}:{d.error_kind}" for d in lost)
            items_log.extend(items)
            st.info.update(items=len(items), dropped_model_solutions=dict(dropped))
    items = items_log.read(BenchSolution)
    dropped = run.completed_stages()["items"].info.get("dropped_model_solutions", {})
    summary: dict = {
        "model": cfg.model,
        "items": len(items),
        "by_origin": dict(Counter(it.origin for it in items)),
        "erroneous": sum(1 for it in items if it.labelled.first_error >= 0),
        "dropped_model_solutions": dropped,
        "judges": {},
    }
    for kind in cfg.judges:
        judgments: list[StepJudgment] = []
        # one stage per family: a killed run loses at most one family's judging
        for family in sorted({it.problem.family for it in items}):
            group = [it for it in items if it.problem.family == family]
            log = run.records(f"judge-{kind}-{family}")
            with run.stage(f"judge-{kind}-{family}") as st:
                if not st.done:
                    log.path.unlink(missing_ok=True)
                    model = model or load_model(cfg.model)
                    log.extend(judge_items(make_step_judge(kind, model, cfg.constrain), group))
                    st.info["judgments"] = len(group)
            judgments += log.read(StepJudgment)
        by_id = {j.item_id: j for j in judgments}
        judgments = [by_id[it.id] for it in items]
        table = breakdown(items, judgments, cfg.threshold, cfg.seed)
        summary["judges"][kind] = {g: {k: m.model_dump() for k, m in ms.items()} for g, ms in table.items()}
        run.metrics.append(
            {"kind": "step_bench", "judge": kind, "model": cfg.model, "metrics": summary["judges"][kind]}
        )
    (run.path / "summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    console.print(fit(summary_table(summary)))
    return summary


HEADLINE = {
    "first_error_acc_erroneous": "1st-err acc (err)",
    "first_error_acc_correct": "acc (correct)",
    "first_error_f1": "PB F1",
    "step_f1_wrong": "step F1",
    "step_auroc": "step AUROC",
    "step_parse_failure_rate": "parse fail",
}


def summary_table(summary: dict) -> Table:
    t = Table(title=f"step-level judge benchmark · {summary['model']} · {summary['items']} items")
    for col in ("judge", "group", *HEADLINE.values()):
        t.add_column(col)
    for kind, groups in summary["judges"].items():
        for g, ms in groups.items():
            cells = (Metric.model_validate(ms[h]).fmt() if h in ms else "-" for h in HEADLINE)
            t.add_row(kind, g.split("=")[-1], *cells)
    return t
