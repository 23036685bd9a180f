"""The judge benchmark: judge verified candidates, pairs and their perturbations, then score the
judges against code-checked truth.

One run = stages (each resumable): build units -> [self-preference generations] -> judge with every
judge (all units of a judge in one batched call per protocol) -> majority study -> summary. Every
judgment is written to `records/judgments.jsonl`; `summary.json` holds the metrics with stable
keys (documented in docs/metrics.md).

The pieces live in their own modules (`config`, `units`, `judging`, `judge_metrics`, `majority`);
their public names are re-exported here, the import path older code uses.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from selflab.evalbench import metrics as M
from selflab.evalbench.config import BenchConfig, check_config
from selflab.evalbench.items import load_items
from selflab.evalbench.judge_metrics import (
    injection_metrics,
    judge_summary,
    order_verdicts,
    pair_accuracy_metrics,
    pairs_from_scores,
    pairwise_judge_metrics,
    perturbation_metrics,
    pointwise_metrics,
    self_preference_metrics,
)
from selflab.evalbench.judging import (
    JudgmentRecord,
    judge_options,
    judge_specs,
    make_judge,
    parse_judge_spec,
    run_judge,
)
from selflab.evalbench.majority import majority_study
from selflab.evalbench.units import Unit, build_units, own_generations, self_preference_units
from selflab.models.types import LanguageModel

__all__ = [
    "SCHEMA",
    "BenchConfig",
    "JudgmentRecord",
    "Unit",
    "build_units",
    "check_config",
    "injection_metrics",
    "judge_options",
    "judge_specs",
    "judge_summary",
    "majority_study",
    "make_judge",
    "order_verdicts",
    "own_generations",
    "pair_accuracy_metrics",
    "pairs_from_scores",
    "pairwise_judge_metrics",
    "parse_judge_spec",
    "perturbation_metrics",
    "pointwise_metrics",
    "run_bench",
    "run_judge",
    "self_preference_metrics",
    "self_preference_units",
]

SCHEMA = "selflab.bench.judges/v1"


def run_bench(
    config: BenchConfig,
    out: str | Path,
    model: LanguageModel | None = None,
    resume: bool = False,
    executor: Any = None,
) -> dict:
    """Run the benchmark into run directory `out` and return the summary (also in summary.json).
    `executor` (see `selflab.execution`): where the judge stages run; Ray workers load `config.model`."""
    from selflab.models import load_model
    from selflab.runs import RunDir

    check_config(config)
    t0 = time.time()
    cpu0 = time.process_time()
    run = RunDir.create(out, config=config, seed=config.seed, resume=resume)
    out_dir = Path(run.path)
    model = model or load_model(config.model)
    items = load_items(config.limit, seed=config.seed)
    units = build_units(items, config)
    specs = judge_specs(config)
    judges = [make_judge(spec, model, config) for spec in specs]  # fail early on bad kinds
    if "self_preference" in config.perturbations:
        own = own_generations(model, items, config.seed)
        sp_units = self_preference_units(items, own, config.seed)
        units += sp_units
        run.records("own_generations").extend(
            [
                {"item_id": k, "text": v, "correct": next(i for i in items if i.id == k).task.check(v)}
                for k, v in own.items()
            ]
        )
    judgments_log = run.records("judgments")
    summary_judges: dict[str, Any] = {}
    for kind, judge in zip(specs, judges, strict=True):
        stage = f"judge-{kind}"
        if run.is_complete(stage):
            recs = [r for r in judgments_log.read(JudgmentRecord) if r.details.get("_kind") == kind]
        else:
            from selflab.evalbench.remote import run_judge_on

            recs = run_judge_on(executor, kind, judge, units, config)
            for r in recs:
                r.details["_kind"] = kind
            judgments_log.extend(recs)
            run.mark_complete(stage, n=len(recs))
        with M.boot_samples(config.n_boot):
            summary_judges[kind] = {
                "name": getattr(judge, "name", kind),
                **judge_summary(recs, units, config.seed, config.n_boot),
            }
    majority = None
    if config.majority:
        with M.boot_samples(config.n_boot):
            majority = majority_study(model, items, config, out_dir)
        run.records("majority_votes").extend(majority.pop("_records"))
    summary = {
        "schema": SCHEMA,
        "model": getattr(model, "name", None) or config.model,
        "model_spec": config.model,
        "seed": config.seed,
        "n_items": len(items),
        "n_units": len(units),
        "domains": sorted({it.domain for it in items}),
        "perturbations": config.perturbations,
        "judges": summary_judges,
        "majority": majority,
        "elapsed_s": round(time.time() - t0, 1),
        "cpu_s": round(time.process_time() - cpu0, 1),
    }
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=str), encoding="utf-8")
    run.metrics.append(  # a runs.metrics.JudgeBenchMetrics row
        {
            "kind": "bench_judges",
            **{
                k: summary[k]
                for k in ("n_items", "n_units", "elapsed_s", "judges", "majority", "perturbations")
            },
        }
    )
    return summary
