"""Pieces every report page shares: page frame, tables, estimates, embedded images.

Reports are self-contained HTML (plots embedded as base64 PNG), so a file can be mailed or opened
offline, and `selflab view` can serve the same file.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from selflab.runs import RunDir

CSS = """
body{font-family:system-ui,sans-serif;margin:2em;max-width:1150px;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:14px}
td,th{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f3f3f3} .sig{color:#060;font-weight:bold} .bad{color:#a00;font-weight:bold}
.dim{color:#777} pre{white-space:pre-wrap;background:#f8f8f8;padding:6px;margin:0;font-size:12px}
img{max-width:100%} .verdict{font-size:1.3em;padding:.6em 1em;border-radius:6px;display:inline-block}
.v-improving{background:#e3f6e3;color:#060} .v-flat{background:#eee;color:#444}
.v-hacking{background:#fde8d8;color:#a40} .v-regressing{background:#fbe0e0;color:#a00}
.refused{background:#fff4f4} .accepted{background:#f4fff4} details{margin:.4em 0}
"""


def esc(x: Any) -> str:
    return html.escape(str(x))


def png(fig: Any) -> str:
    """A matplotlib figure as a data: URL."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def image_file(path: Path) -> str:
    """An `<img>` of a PNG saved by the producer, embedded so the report stays self-contained."""
    if not path.is_file():
        return ""
    data = base64.b64encode(path.read_bytes()).decode()
    return f"<h3>{esc(path.name)}</h3><img alt='{esc(path.name)}' src='data:image/png;base64,{data}'>"


def pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def is_estimate(d: Any) -> bool:
    return isinstance(d, dict) and "value" in d and ("low" in d or "ci_low" in d or "lo" in d)


def fmt_estimate(d: dict[str, Any], digits: int = 3) -> str:
    """`0.712 [0.601, 0.810] (n=52)` from an Estimate's dict (any of its spellings)."""
    v = d.get("value")
    lo = d.get("low", d.get("ci_low", d.get("lo")))
    hi = d.get("high", d.get("ci_high", d.get("hi")))
    if not _num(v):
        return "n/a"
    text = f"{v:.{digits}f}"
    if _num(lo) and _num(hi):
        text += f" [{lo:.{digits}f}, {hi:.{digits}f}]"
    n = d.get("n")
    return text + (f" (n={n})" if n is not None else "")


def fmt_value(v: Any, digits: int = 3) -> str:
    if is_estimate(v):
        return fmt_estimate(v, digits)
    if isinstance(v, float):
        return "n/a" if not math.isfinite(v) else f"{v:.{digits}g}"
    if isinstance(v, dict | list):
        return json.dumps(v, default=str)[:300]
    return str(v)


def _num(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def flatten(d: Any, prefix: str = "") -> Iterable[tuple[str, Any]]:
    """(dotted path, leaf) pairs; an Estimate dict is a leaf."""
    if isinstance(d, dict) and not is_estimate(d):
        for k, v in d.items():
            yield from flatten(v, f"{prefix}.{k}" if prefix else str(k))
    else:
        yield prefix, d


def table(headers: list[str], rows: Iterable[Iterable[Any]], cls: str = "") -> str:
    """An HTML table; cells are escaped unless they are `Raw`."""
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{c if isinstance(c, Raw) else esc(c)}</td>" for c in row) + "</tr>"
        for row in rows
    )
    return f"<table class='{cls}'><tr>{head}</tr>{body}</table>"


class Raw(str):
    """HTML that a table must not escape."""


def header(run: RunDir, title: str) -> list[str]:
    meta = run.meta
    return [
        f"<!doctype html><meta charset='utf-8'><title>selflab report: {esc(run.path.name)}</title>",
        f"<style>{CSS}</style>",
        f"<h1>{esc(title)} · {esc(run.path.name)}</h1>",
        f"<p class='dim'>command {esc(meta.get('command'))} · created {esc(meta.get('created_at'))} · "
        f"commit {esc(meta.get('git_commit'))} · seed {esc(meta.get('seed'))}</p>",
    ]


def config_section(run: RunDir) -> str:
    cfg = run.meta.get("config", {})
    return f"<h2>Config</h2><pre>{esc(json.dumps(cfg, indent=2, default=str))}</pre>"


def stages_section(run: RunDir) -> str:
    rows = []
    for name, st in run.completed_stages().items():
        info = {k: v for k, v in st.info.items() if k != "seconds"}
        rows.append([name, st.info.get("seconds", ""), json.dumps(info, default=str)])
    return "<h2>Stages</h2>" + table(["stage", "seconds", "info"], rows) if rows else ""


def write_html(run: RunDir, parts: list[str]) -> Path:
    target = run.path / "report.html"
    tmp = target.with_suffix(".html.tmp")
    tmp.write_text("\n".join(p for p in parts if p), encoding="utf-8")
    tmp.replace(target)
    return target
