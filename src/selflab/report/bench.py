"""The judge-benchmark report: metric tables per judge, flip rates per perturbation, the majority
curve (is a majority vote of sampled or persona jurors a valid ground truth?)."""

from __future__ import annotations

from typing import Any

from selflab.report.common import esc, flatten, fmt_value, image_file, png, pyplot, table
from selflab.runs import RunDir
from selflab.runs.metrics import JudgeBenchMetrics


def _judge_table(name: str, summary: dict[str, Any]) -> str:
    rows = [
        [path, fmt_value(v)]
        for path, v in flatten({k: v for k, v in summary.items() if k != "perturbations"})
    ]
    return f"<h3>{esc(name)}</h3>" + table(["metric", "value [95% CI]"], rows)


def _per_perturbation(summary: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """`perturbations[p][protocol]` -> {"p (protocol)": entry}."""
    out: dict[str, dict[str, Any]] = {}
    for p, modes in (summary.get("perturbations") or {}).items():
        for mode, entry in (modes or {}).items():
            if isinstance(entry, dict):
                out[f"{p} ({mode})"] = entry
    return out


def _flip_table(judges: dict[str, dict[str, Any]]) -> str:
    per = {name: _per_perturbation(s) for name, s in judges.items()}
    keys: list[str] = []
    for d in per.values():
        keys += [k for k in d if k not in keys]
    if not keys:
        return ""
    rows = []
    for k in keys:
        expect = next((d[k].get("expect", "") for d in per.values() if k in d), "")
        rows.append([k, expect, *(fmt_value(d[k]["flip_rate"]) if k in d else "-" for d in per.values())])
    return (
        "<h2>Flip rates per perturbation</h2><p class='dim'>Share of decisions that change when the "
        "input is perturbed; <i>expect</i> says whether a good judge should keep (same) or change "
        "its decision.</p>" + table(["perturbation", "expect", *judges], rows)
    )


def _majority(run: RunDir, m: dict[str, Any]) -> str:
    sizes = m.get("sizes") or []
    if not sizes:
        return ""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for label in ("seeds", "personas"):
        pts = [
            (s, e)
            for s, e in zip(sizes, m.get(label) or [], strict=False)
            if e and e.get("value") is not None
        ]
        if not pts:
            continue
        xs = [s for s, _ in pts]
        ys = [e["value"] for _, e in pts]
        lo = [e.get("low") if e.get("low") is not None else e["value"] for _, e in pts]
        hi = [e.get("high") if e.get("high") is not None else e["value"] for _, e in pts]
        ax.plot(xs, ys, marker="o", label=label)
        ax.fill_between(xs, lo, hi, alpha=0.2)
    if m.get("chance") is not None:
        ax.axhline(m["chance"], ls="--", color="#999", label="chance (majority class)")
    ax.set_xlabel("jury size")
    ax.set_ylabel("majority accuracy vs truth")
    ax.legend(fontsize=8)
    src = png(fig)
    plt.close(fig)
    rows = [
        [s, fmt_value(a), fmt_value(b)]
        for s, a, b in zip(sizes, m.get("seeds") or [], m.get("personas") or [], strict=False)
    ]
    return (
        "<h2>Majority curve</h2>"
        + f"<img alt='majority curve' src='{src}'>"
        + table(["jury size", "seeds (T=0.7)", "personas (T=0.7)"], rows)
    )


def bench_report(run: RunDir, rows: list[JudgeBenchMetrics]) -> list[str]:
    parts: list[str] = []
    for row in rows:
        parts.append(
            f"<h2>Judge benchmark</h2><p class='dim'>{row.n_items} items, {row.n_units} judged units, "
            f"{row.elapsed_s} s; perturbations: {esc(', '.join(row.perturbations))}</p>"
        )
        parts += [_judge_table(name, s) for name, s in row.judges.items()]
        parts.append(_flip_table(row.judges))
        if row.majority:
            parts.append(_majority(run, row.majority))
    if not rows:
        return parts
    parts.append(image_file(run.path / "majority.png") if not any(r.majority for r in rows) else "")
    return parts
