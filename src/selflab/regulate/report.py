"""Regulate sections appended to the common run report (selflab.report writes the metrics part):
constitution versions with diffs, the strategy comparison with Wilson CIs and McNemar tests,
collapse checks, and the data sources with their licences."""

from __future__ import annotations

import html
from pathlib import Path

from selflab.regulate.constitution import VersionStore
from selflab.regulate.datasets import SOURCES
from selflab.runs import RunDir


def _last(run: RunDir, kind: str) -> dict | None:
    found = None
    for d in run.metrics.iter_dicts():
        if d.get("kind", d.get("type")) == kind:
            found = d
    return found


def _all(run: RunDir, kind: str) -> list[dict]:
    latest: dict[object, dict] = {}
    for d in run.metrics.iter_dicts():
        if d.get("kind", d.get("type")) == kind:
            latest[d.get("cycle", len(latest))] = d
    return list(latest.values())


def comparison_html(cmp: dict) -> str:
    rows = ["<tr><th>arm</th><th>cases fixed</th><th>rate [95% Wilson CI]</th></tr>"]
    for arm, r in cmp["arms"].items():
        ci = f"[{r['lo']:.3f}, {r['hi']:.3f}]" if r.get("lo") is not None else ""
        rate = f"{r['rate']:.3f}" if r.get("rate") is not None else "n/a"
        rows.append(
            f"<tr><td>{html.escape(arm)}</td><td>{r['success']}/{r['n']}</td><td>{rate} {ci}</td></tr>"
        )
    tests = ["<tr><th>a</th><th>b</th><th>paired cases</th><th>p (exact McNemar)</th></tr>"]
    for t in cmp.get("tests", []):
        tests.append(f"<tr><td>{t['a']}</td><td>{t['b']}</td><td>{t['n']}</td><td>{t['p_mcnemar']}</td></tr>")
    fam = cmp.get("by_family") or {}
    arms = list(cmp["arms"])
    frows = ["<tr><th>family</th>" + "".join(f"<th>{html.escape(a)}</th>" for a in arms) + "</tr>"]
    for f, vals in fam.items():
        frows.append(
            f"<tr><td>{html.escape(f)}</td>" + "".join(f"<td>{vals.get(a, '')}</td>" for a in arms) + "</tr>"
        )
    return (
        "<h2>Atomic decisions: patch success by strategy</h2>"
        "<p>A case is fixed when, under the patched constitution, every held-out paraphrase of the "
        "exploit is refused and every benign twin is answered (phrase rule). 'none' is the "
        "unpatched constitution.</p>"
        f"<table>{''.join(rows)}</table><table>{''.join(tests)}</table>"
        f"<h3>By vulnerability family (rate fixed)</h3><table>{''.join(frows)}</table>"
    )


def versions_html(run: RunDir) -> str:
    store = VersionStore(run.path)
    versions = store.versions()
    if not versions:
        return ""
    parts = [f"<h2>Constitution versions ({len(versions)})</h2>"]
    for v in versions:
        d = store.diff_text(v.version)
        parts.append(
            f"<h3>v{v.version}: {len(v.principles)} principles, {v.chars()} characters</h3>"
            + (f"<pre>{html.escape(d)}</pre>" if d else "")
        )
    last = versions[-1]
    parts.append(f"<h3>Latest (v{last.version})</h3><pre>{html.escape(last.to_yaml())}</pre>")
    return "".join(parts)


def collapse_html(run: RunDir) -> str:
    rows = _all(run, "collapse_check")
    if not rows:
        return ""
    out = ["<tr><th>cycle</th><th>collapsed</th><th>signals</th><th>values</th></tr>"]
    for r in rows:
        cls = "bad" if r.get("collapsed") else ""
        out.append(
            f"<tr><td>{r.get('cycle')}</td><td class='{cls}'>{r.get('collapsed')}</td>"
            f"<td>{html.escape(', '.join(r.get('signals', [])))}</td>"
            f"<td class='dim'>{html.escape(str(r.get('values')))}</td></tr>"
        )
    return "<h2>Collapse checks (per cycle)</h2><table>" + "".join(out) + "</table>"


def sources_html() -> str:
    rows = ["<tr><th>set</th><th>what</th><th>licence</th><th>upstream</th></tr>"]
    for s in SOURCES.values():
        rows.append(
            f"<tr><td>{html.escape(s.name)}</td><td>{html.escape(s.what)}</td>"
            f"<td>{html.escape(s.licence)}</td><td>{html.escape(s.upstream)}</td></tr>"
        )
    return "<h2>Data sources</h2><table>" + "".join(rows) + "</table>"


def append_regulate_section(run: RunDir | str | Path) -> Path:
    """Write report.html: the common run report (selflab.report) followed by the regulate sections."""
    from selflab.report import render
    from selflab.report.common import write_html

    run = run if isinstance(run, RunDir) else RunDir.open(run)
    parts = [versions_html(run), collapse_html(run)]
    cmp = _last(run, "atomic_comparison")
    if cmp:
        parts.insert(0, comparison_html(cmp))
    parts.append(sources_html())
    return write_html(run, [render(run), *parts])


def markdown_summary(run: RunDir | str | Path) -> str:
    """The run's numbers as Markdown (truth-meter metrics with CIs and paired tests, the strategy
    comparison, collapse checks, constitution versions): what docs/regulate.md quotes."""
    from selflab.loops.truth_meter import read_metrics

    run = run if isinstance(run, RunDir) else RunDir.open(run)
    out: list[str] = []
    cmp = _last(run, "atomic_comparison")
    if cmp:
        out += ["| arm | cases fixed | rate [95% Wilson CI] |", "|---|---|---|"]
        for arm, r in cmp["arms"].items():
            ci = f"[{r['lo']:.2f}, {r['hi']:.2f}]" if r.get("lo") is not None else ""
            out.append(f"| {arm} | {r['success']}/{r['n']} | {r['rate']} {ci} |")
        out.append("")
        out.append(
            "McNemar (exact): " + "; ".join(f"{t['a']} vs {t['b']} p={t['p_mcnemar']}" for t in cmp["tests"])
        )
        out.append("")
    its = read_metrics(run)
    if its:
        out += ["| iter | metric | value [95% CI] | Δ vs iter 0 [95% CI] | p |", "|---|---|---|---|---|"]
        for it in its:
            for s in it.metrics.values():
                vb = s.vs_baseline
                p = f"{vb.p_value:.3g} ({vb.test})" if vb and vb.p_value is not None else "-"
                out.append(
                    f"| {it.iteration} | {s.name} | {s.estimate.fmt()} | {vb.delta.fmt() if vb else '-'} | {p} |"
                )
        out.append("")
        for it in its:
            keep = {
                k: v
                for k, v in it.info.items()
                if k
                in (
                    "refusal_kappa",
                    "refusal_agreement",
                    "judged_items",
                    "judge_unparsable",
                    "version",
                    "principles",
                    "churn",
                )
            }
            if keep:
                out.append(f"- iteration {it.iteration}: " + ", ".join(f"{k}={v}" for k, v in keep.items()))
        out.append("")
    for r in _all(run, "collapse_check"):
        out.append(
            f"- collapse check cycle {r['cycle']}: collapsed={r['collapsed']} {', '.join(r.get('signals', []))}"
        )
    versions = VersionStore(run.path).versions()
    if len(versions) > 1:
        out.append("")
        out.append(f"Constitution versions: {len(versions)}; diffs:")
        out.append("```diff")
        out += [VersionStore(run.path).diff_text(v.version).rstrip() for v in versions[1:]]
        out.append("```")
    stages = run.completed_stages()
    wall = sum(float(s.info.get("seconds", 0) or 0) for s in stages.values())
    out.append(f"\nStage time: {wall:.0f} s over {len(stages)} stages.")
    return "\n".join(out)
