"""The loop report: the truth-meter verdict, per-iteration metrics with CI bands, self-reward against the
objective measures, paired tests against the starting model, stage timings and sample answers.

Self-contained (plots embedded as base64 PNG), so the file can be mailed or opened offline.
"""

from __future__ import annotations

import html
import json

from selflab.report.common import CSS, png, pyplot
from selflab.runs import RunDir
from selflab.runs.metrics import IterationMetrics, RunFinished, read_metrics, read_rows


def _plots(its: list[IterationMetrics]) -> list[tuple[str, str]]:
    plt = pyplot()

    out: list[tuple[str, str]] = []
    names: list[str] = []
    for it in its:
        names += [n for n in it.metrics if n not in names]

    def series(name: str) -> tuple[list[int], list[float], list[float], list[float]]:
        xs, ys, lo, hi = [], [], [], []
        for it in its:
            s = it.metrics.get(name)
            if s and s.estimate.mean is not None:
                xs.append(it.iteration)
                ys.append(s.estimate.mean)
                lo.append(s.estimate.lo if s.estimate.lo is not None else s.estimate.mean)
                hi.append(s.estimate.hi if s.estimate.hi is not None else s.estimate.mean)
        return xs, ys, lo, hi

    # 1. self-reward against the objective measures on one [0, 1] axis.
    fig, ax = plt.subplots(figsize=(7, 4))
    for name in names:
        kind = next(it.metrics[name].kind for it in its if name in it.metrics)
        if kind in ("self_reward", "objective") or name.startswith("gap"):
            xs, ys, lo, hi = series(name)
            if xs:
                style = "--" if kind == "self_reward" else ":" if name.startswith("gap") else "-"
                ax.plot(xs, ys, style, marker="o", label=name)
                ax.fill_between(xs, lo, hi, alpha=0.15)
    ax.set_xlabel("iteration (0 = starting model)")
    ax.set_ylabel("value (95% bootstrap CI)")
    ax.set_title("self-reward (dashed) vs objective measures (solid)")
    ax.axhline(0, color="#999", lw=0.5)
    ax.legend(fontsize=8)
    out.append(("Self-reward vs objective", png(fig)))
    plt.close(fig)

    # 2. one small panel per metric.
    cols = 3
    rows = (len(names) + cols - 1) // cols
    if rows:
        fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3 * rows), squeeze=False)
        for k, name in enumerate(names):
            ax = axes[k // cols][k % cols]
            xs, ys, lo, hi = series(name)
            ax.plot(xs, ys, marker="o")
            ax.fill_between(xs, lo, hi, alpha=0.2)
            ax.set_title(name, fontsize=9)
            ax.set_xticks(xs)
        for k in range(len(names), rows * cols):
            axes[k // cols][k % cols].axis("off")
        fig.tight_layout()
        out.append(("Every metric per iteration", png(fig)))
        plt.close(fig)
    return out


def _metrics_table(its: list[IterationMetrics]) -> str:
    rows = [
        "<tr><th>iter</th><th>metric</th><th>kind</th><th>value [95% CI]</th>"
        "<th>Δ vs iter 0 [95% CI]</th><th>p (test)</th><th>fail→pass / pass→fail</th></tr>"
    ]
    for it in its:
        for s in it.metrics.values():
            vb = s.vs_baseline
            cls = ""
            if vb and vb.p_value is not None and vb.p_value < 0.05 and vb.delta.mean is not None:
                better = (vb.delta.mean > 0) == s.higher_is_better
                cls = "sig" if better else "bad"
            p = f"{vb.p_value:.3g} ({vb.test})" if vb and vb.p_value is not None else "-"
            moved = f"{vb.improved} / {vb.worsened}" if vb else "-"
            kind = s.kind + (" (optimised)" if s.optimised else "")
            rows.append(
                f"<tr><td>{it.iteration}</td><td title='{html.escape(s.description)}'>{html.escape(s.name)}</td>"
                f"<td>{kind}</td><td>{s.estimate.fmt()}</td>"
                f"<td class='{cls}'>{vb.delta.fmt() if vb else '-'}</td><td class='{cls}'>{p}</td>"
                f"<td>{moved}</td></tr>"
            )
    return "<table>" + "".join(rows) + "</table>"


def _stages_table(run: RunDir) -> str:
    rows = ["<tr><th>stage</th><th>seconds</th><th>info</th></tr>"]
    for name, st in run.completed_stages().items():
        info = {k: v for k, v in st.info.items() if k != "seconds"}
        rows.append(
            f"<tr><td>{html.escape(name)}</td><td>{st.info.get('seconds', '')}</td>"
            f"<td class='dim'>{html.escape(json.dumps(info, default=str))}</td></tr>"
        )
    return "<table>" + "".join(rows) + "</table>"


def _samples(run: RunDir, its: list[IterationMetrics], k: int = 6) -> str:
    """The same first held-out items answered by the first and the last model, side by side."""
    if not its:
        return ""
    first, last = its[0].iteration, its[-1].iteration
    a = run.records(f"iter-{first}.evaluate").read_dicts()[:k]
    b = run.records(f"iter-{last}.evaluate").read_dicts()[:k] if last != first else []
    if not a:
        return ""
    rows = [f"<tr><th>prompt</th><th>iteration {first}</th><th>iteration {last}</th></tr>"]
    for i, x in enumerate(a):
        y = b[i] if i < len(b) else {}

        def cell(r: dict) -> str:
            if not r:
                return "-"
            mark = "✔" if r.get("verified") else "✘"
            score = r.get("self_score")
            s = f" self={score:.2f}" if isinstance(score, float) else ""
            return f"<b>{mark}</b>{s}<pre>{html.escape(str(r.get('response', '')))}</pre>"

        rows.append(
            f"<tr><td>{html.escape(str(x.get('prompt', '')))}</td><td>{cell(x)}</td><td>{cell(y)}</td></tr>"
        )
    return "<h2>Sample held-out answers</h2><table>" + "".join(rows) + "</table>"


def _verdict(its: list[IterationMetrics]) -> str:
    """The truth meter's reading of the latest iteration that has one, as a banner."""
    for it in reversed(its):
        if it.verdict:
            reason = f" · {html.escape(it.verdict_reason)}" if it.verdict_reason else ""
            return (
                f"<p class='verdict v-{it.verdict}' id='verdict'>truth meter: <b>{it.verdict}</b>"
                f" (iteration {it.iteration}){reason}</p>"
            )
    return ""


def loop_report(run: RunDir) -> list[str]:
    """The parts of a loop's report.html, from metrics.jsonl and the stage records."""
    its = read_metrics(run)
    meta = run.meta
    exact = run.path / "loop_config.json"  # run.yaml redacts token-like keys; this copy is exact
    cfg = json.loads(exact.read_text(encoding="utf-8")) if exact.is_file() else meta.get("config", {})
    wall = [r.wall_s for r in read_rows(run) if isinstance(r, RunFinished)]
    parts = [
        f"<!doctype html><meta charset='utf-8'><title>selflab report: {html.escape(run.path.name)}</title>",
        f"<style>{CSS}</style>",
        f"<h1>{html.escape(str(cfg.get('loop', 'run')))} · {html.escape(run.path.name)}</h1>",
        _verdict(its),
        f"<p class='dim'>created {meta.get('created_at')} · commit {meta.get('git_commit')} · seed {meta.get('seed')}"
        + (f" · last session wall time {wall[-1]} s" if wall else "")
        + "</p>",
        "<p>Green: significant improvement over iteration 0 (p &lt; 0.05, paired test on the same items); "
        "red: significant regression. <i>Objective</i> measures are computed by code or fixed opponents, "
        "never by the model's own judge; a rising self-reward with a flat objective is reward hacking.</p>",
    ]
    if its:
        for title, src in _plots(its):
            parts.append(f"<h2>{title}</h2><img src='{src}'>")
        parts.append("<h2>Metrics</h2>" + _metrics_table(its))
    else:
        parts.append("<p>No metrics recorded yet.</p>")
    parts.append(_samples(run, its))
    parts.append("<h2>Stages</h2>" + _stages_table(run))
    parts.append(f"<h2>Config</h2><pre>{html.escape(json.dumps(cfg, indent=2, default=str))}</pre>")
    return parts
