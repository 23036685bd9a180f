"""The guided-search comparison as a run: every method on held-out problems of every family, the
beams capped at the tokens the sampled methods spent (equal generated tokens), a resumable run
directory, and a table of accuracy (Wilson CI), tokens and judge calls per problem, and McNemar
p-values against majority vote."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import Field

from selflab.stepwise.search import (
    METHODS,
    MIN_STEP_TOKENS,
    SearchConfig,
    SearchResult,
    beam_search,
    sampled_methods,
)
from selflab.stepwise.types import StepProblem


class SearchRunConfig(SearchConfig):
    model: str = Field("smollm2-135m", description="Model spec.")
    families: list[str] = Field(
        default_factory=lambda: ["arithmetic", "blocks", "dates", "detective"],
        description="Problem families.",
    )
    problems_per_family: int = Field(10, ge=1, description="Held-out problems per family.")
    methods: list[str] = Field(default_factory=lambda: list(METHODS), description="Methods to compare.")


def mcnemar_p(a: Sequence[bool], b: Sequence[bool]) -> float:
    """Exact two-sided McNemar p-value (binomial test on discordant pairs)."""
    from scipy import stats

    x = sum(1 for p, q in zip(a, b, strict=True) if p and not q)
    y = sum(1 for p, q in zip(a, b, strict=True) if q and not p)
    return 1.0 if x + y == 0 else float(stats.binomtest(x, x + y, 0.5).pvalue)


def summarise(
    results: Sequence[SearchResult], methods: Sequence[str], reference: str = "majority"
) -> list[dict]:
    """Per method: accuracy with a Wilson CI, compute per problem, and McNemar p vs `reference`."""
    from selflab.stepwise.metrics import proportion

    by = {
        m: sorted((r for r in results if r.method == m), key=lambda r: (r.family, r.problem_id))
        for m in methods
    }
    rows = []
    for m, rs in by.items():
        if not rs:
            continue
        ref = by.get(reference) or []
        row = {
            "method": m,
            "accuracy": proportion([r.correct for r in rs]).model_dump(),
            "tokens_per_problem": sum(r.tokens for r in rs) / len(rs),
            "judge_calls_per_problem": sum(r.judge_calls for r in rs) / len(rs),
            "tokens_per_problem_by_family": {
                f: sum(r.tokens for r in rs if r.family == f) / sum(1 for r in rs if r.family == f)
                for f in sorted({r.family for r in rs})
            },
            "per_family": {
                f: sum(r.correct for r in rs if r.family == f) for f in sorted({r.family for r in rs})
            },
        }
        if ref and m != reference and len(ref) == len(rs):
            row[f"p_vs_{reference}"] = mcnemar_p([r.correct for r in ref], [r.correct for r in rs])
        rows.append(row)
    return rows


def beam_budgets(problems: Sequence[StepProblem], spent: dict[str, int], cfg: SearchConfig) -> list[int]:
    """Per problem the tokens a beam search may generate: `cfg.token_budget` when set, else what
    the N sampled solutions of that problem generated (equal tokens), else n * max_new_tokens."""
    default = cfg.n * cfg.max_new_tokens
    if cfg.token_budget:
        return [cfg.token_budget] * len(problems)
    return [max(spent.get(p.id, default), MIN_STEP_TOKENS) for p in problems]


def run_search(
    cfg: SearchRunConfig, out: str, resume: bool = False, console: object | None = None
) -> list[dict]:
    """Every method on held-out problems of every family; a run directory with one stage per
    (family, method group), resumable; summary.json holds the table."""
    import json

    from rich.console import Console
    from rich.table import Table

    from selflab.errors import ConfigError
    from selflab.models import load_model
    from selflab.runs import RunDir
    from selflab.stepwise import get_family, step_problems

    bad = [m for m in cfg.methods if m not in METHODS]
    if bad:
        raise ConfigError(f"unknown search methods {bad}", f"choose from {', '.join(METHODS)}")
    con = console if isinstance(console, Console) else Console()
    run = RunDir.create(out, config=cfg, seed=cfg.seed, resume=resume, command="selflab stepwise search")
    model = None
    results: list[SearchResult] = []
    search = cfg.model_copy(update={"seed": cfg.seed})
    for f in cfg.families:
        fam = get_family(f)
        problems = step_problems(f, cfg.problems_per_family, cfg.seed, "heldout")
        groups: list[tuple[str, str | None]] = (
            [("sampled", None)]
            if set(cfg.methods) & {"greedy", "majority", "bon_step", "bon_outcome"}
            else []
        )
        groups += [(f"beam_{g}", g) for g in ("step", "outcome") if f"beam_{g}" in cfg.methods]
        spent: dict[str, int] = {}  # tokens the sampled methods generated per problem
        for name, guide in groups:
            # sampled methods: one stage per family (batched); beams: one stage per problem, so a
            # killed run loses at most one problem's beam (a finished whole-family stage counts too)
            whole = guide is None or f"{f}.{name}" in run.completed_stages()
            parts = (
                [(f"{f}.{name}", problems)]
                if whole
                else [(f"{f}.{name}.p{i}", [p]) for i, p in enumerate(problems)]
            )
            for stage, group in parts:
                log = run.records(stage)
                with run.stage(stage) as st:
                    if not st.done:
                        log.path.unlink(missing_ok=True)
                        model = model or load_model(cfg.model)
                        if guide is None:
                            rs = sampled_methods(model, fam, group, search)
                        else:
                            budgets = beam_budgets(group, spent, search)
                            rs = beam_search(model, fam, group, search, guide, budgets)
                            st.info["token_budgets"] = budgets
                        log.extend(rs)
                        st.info["results"] = len(rs)
                done = log.read(SearchResult)
                spent.update({r.problem_id: r.tokens for r in done if r.method == "majority"})
                results += [r for r in done if r.method in cfg.methods]
    rows = summarise(results, cfg.methods)
    (run.path / "summary.json").write_text(json.dumps(rows, indent=2), encoding="utf-8")
    run.metrics.append({"kind": "step_search", "model": cfg.model, "rows": rows})
    t = Table(
        title=f"guided search · {cfg.model} · N={cfg.n} · {len(cfg.families)} families × {cfg.problems_per_family}"
    )
    cols = (
        "method",
        "accuracy [95% CI]",
        "tokens/problem",
        "tokens/problem by family",
        "judge calls/problem",
    )
    for col in (*cols, "p vs majority"):
        t.add_column(col)
    for r in rows:
        a = r["accuracy"]
        t.add_row(
            r["method"],
            f"{a['value']:.2f} [{a['lo']:.2f}, {a['hi']:.2f}] (n={a['n']})",
            f"{r['tokens_per_problem']:.0f}",
            " ".join(f"{k}={v:.0f}" for k, v in r["tokens_per_problem_by_family"].items()),
            f"{r['judge_calls_per_problem']:.1f}",
            f"{r['p_vs_majority']:.3f}" if "p_vs_majority" in r else "-",
        )
    con.print(t)
    return rows
