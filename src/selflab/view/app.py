"""`selflab view`: a local web UI over a folder of run directories.

Lists the runs, shows each one's report (rendered fresh from `runs/` data, so a running job's
latest metrics appear on reload), steps through game episodes one event at a time (refused
attempts with their raw output and reason included), and filters any record log by field.
Read-only, no JavaScript framework, bound to localhost by default.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse

from selflab.report import render
from selflab.report.common import CSS, Raw, esc, table
from selflab.report.games import episodes_table
from selflab.report.replay import events
from selflab.runs import RunDir, read_rows

MAX_ROWS = 200
NAV_CSS = "nav{background:#223;padding:.5em 1em;margin:-2em -2em 1em} nav a{color:#fff;margin-right:1.2em}"


def find_runs(root: Path, depth: int = 3) -> list[Path]:
    """Run directories (holding run.yaml) under `root`, at most `depth` levels down."""
    out = []
    if (root / "run.yaml").is_file():
        out.append(root)
    if depth > 0 and root.is_dir():
        for child in sorted(root.iterdir()):
            if child.is_dir() and child.name not in ("records", "data", "checkpoints", "cache"):
                out += find_runs(child, depth - 1)
    return out


def _page(title: str, body: str, run: str | None = None) -> HTMLResponse:
    links = "<a href='/'>runs</a>"
    if run:
        links += (
            f"<a href='/run/{run}/'>report</a><a href='/run/{run}/-/episodes'>episodes</a>"
            f"<a href='/run/{run}/-/records'>records</a>"
        )
    return HTMLResponse(
        f"<!doctype html><meta charset='utf-8'><title>{esc(title)}</title><style>{CSS}{NAV_CSS}</style>"
        f"<nav>{links}</nav><h1>{esc(title)}</h1>{body}"
    )


def _flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and not prefix:
            out.update(_flat(v, key + "."))
        else:
            out[key] = v
    return out


STEPPER_JS = """
<script>
let pos = 0; const rows = [...document.querySelectorAll('tr.ev')];
function show(){ rows.forEach((r,i)=>r.style.display = i < pos ? '' : 'none');
  document.getElementById('pos').textContent = pos + ' / ' + rows.length; }
document.getElementById('next').onclick = ()=>{ pos = Math.min(rows.length, pos + 1); show(); };
document.getElementById('prev').onclick = ()=>{ pos = Math.max(0, pos - 1); show(); };
document.getElementById('all').onclick = ()=>{ pos = rows.length; show(); };
pos = 1; show();
</script>
"""


def create_app(root: str | Path) -> FastAPI:
    """The web app serving the runs under `root`."""
    root = Path(root).resolve()
    app = FastAPI(title="selflab view")

    def open_run(name: str) -> RunDir:
        path = (root / name).resolve()
        if not path.is_relative_to(root) or not (path / "run.yaml").is_file():
            raise HTTPException(404, f"no run {name!r} under {root}")
        return RunDir(path)

    @app.get("/", response_class=HTMLResponse)
    def index() -> HTMLResponse:
        rows = []
        for path in find_runs(root):
            run = RunDir(path)
            name = "." if path == root else path.relative_to(root).as_posix()
            meta = run.meta
            kinds = sorted({r.kind for r in read_rows(run)} - {"run_finished"})
            link = Raw(f"<a class='run' href='/run/{esc(name)}/'>{esc(name)}</a>")
            rows.append([link, meta.get("command") or "", meta.get("created_at") or "", ", ".join(kinds)])
        body = table(["run", "command", "created", "metric rows"], rows) if rows else "<p>No runs found.</p>"
        return _page(f"selflab runs in {root}", body)

    @app.get("/run/{name:path}/-/episodes", response_class=HTMLResponse)
    def episodes(name: str) -> HTMLResponse:
        run = open_run(name)
        eps = run.records("episodes").read_dicts()
        body = episodes_table(eps) if eps else "<p>This run recorded no episodes.</p>"
        return _page(f"{name}: episodes", body, name)

    @app.get("/run/{name:path}/-/episode/{index}", response_class=HTMLResponse)
    def episode(name: str, index: int) -> HTMLResponse:
        eps = open_run(name).records("episodes").read_dicts()
        if not 0 <= index < len(eps):
            raise HTTPException(404, f"episode {index} not in 0..{len(eps) - 1}")
        ep = eps[index]
        rows = []
        for e in events(ep, accepted=True):
            cls = "ev ev-" + e.kind + (" refused" if e.kind == "refused" else "")
            if e.kind == "message":
                to = "" if e.recipients is None else " → " + ",".join(f"P{r}" for r in e.recipients)
                cells = [e.who + to, e.msg_type, esc(e.text)]
            else:
                raw = f"<pre>{esc(e.raw)}</pre>" if e.raw else ""
                note = f"<b>{esc(e.reason)}</b>" if e.reason else esc(e.text)
                cells = [e.who, e.kind, note + raw]
            rows.append(
                f"<tr class='{cls}'><td>t{e.turn}</td><td>{esc(cells[0])}</td><td>{esc(cells[1])}</td>"
                f"<td>{cells[2]}</td></tr>"
            )
        seats = ", ".join(f"P{i}={a}" for i, a in enumerate(ep.get("agents", [])))
        body = (
            f"<p>{esc(ep.get('env_id'))} · seed {esc(ep.get('seed'))} · {esc(seats)} · winners "
            f"{esc(ep.get('winners'))} · {esc(ep.get('outcome', ''))}</p>"
            "<p><button id='prev'>◀ prev</button> <button id='next'>next ▶</button> "
            "<button id='all'>show all</button> <span id='pos'></span></p>"
            "<table id='replay'><tr><th>turn</th><th>who</th><th>type</th><th>text</th></tr>"
            + "".join(rows)
            + "</table>"
            + STEPPER_JS
        )
        return _page(f"{name}: episode {ep.get('episode_id', index)}", body, name)

    @app.get("/run/{name:path}/-/records/{log}", response_class=HTMLResponse)
    def records(name: str, log: str, request: Request) -> HTMLResponse:
        run = open_run(name)
        if not (run.path / "records" / f"{log}.jsonl").is_file():
            raise HTTPException(404, f"no record log {log!r}")
        flat = [_flat(d) for d in run.records(log).read_dicts()]
        params = dict(request.query_params)
        q = params.pop("q", "").lower()
        keys = list(dict.fromkeys(k for d in flat for k in d))
        facets: dict[str, list[str]] = {}
        for k in keys:
            vals = {json.dumps(d.get(k), default=str) for d in flat if not isinstance(d.get(k), list | dict)}
            if 2 <= len(vals) <= 20 and len(facets) < 8:
                facets[k] = sorted(vals)
        shown = [
            d
            for d in flat
            if all(json.dumps(d.get(k), default=str) == v for k, v in params.items() if v and k in facets)
            and (not q or q in json.dumps(d, default=str).lower())
        ]
        selects = "".join(
            f"<label>{esc(k)} <select name='{esc(k)}'><option value=''>any</option>"
            + "".join(
                f"<option value='{esc(v)}'{' selected' if params.get(k) == v else ''}>{esc(v)}</option>"
                for v in vals
            )
            + "</select></label> "
            for k, vals in facets.items()
        )
        form = (
            f"<form id='filter' method='get'>{selects}<label>text <input name='q' value='{esc(q)}'></label> "
            "<button type='submit' id='apply'>filter</button></form>"
        )
        cols = keys[:12]
        body_rows = [[_cell(d.get(c)) for c in cols] for d in shown[:MAX_ROWS]]
        summary = f"<p id='count'>{len(shown)} of {len(flat)} records" + (
            f" (first {MAX_ROWS} shown)" if len(shown) > MAX_ROWS else ""
        )
        return _page(f"{name}: {log}", form + summary + "</p>" + table(cols, body_rows, "records"), name)

    @app.get("/run/{name:path}/-/records", response_class=HTMLResponse)
    def record_logs(name: str) -> HTMLResponse:
        run = open_run(name)
        logs = sorted(p.stem for p in (run.path / "records").glob("*.jsonl"))
        items = "".join(f"<li><a href='/run/{esc(name)}/-/records/{esc(x)}'>{esc(x)}</a></li>" for x in logs)
        return _page(f"{name}: records", f"<ul>{items}</ul>" if logs else "<p>No records.</p>", name)

    @app.get("/run/{name:path}/", response_class=HTMLResponse)
    def report(name: str) -> HTMLResponse:
        html = render(open_run(name))
        nav = (
            f"<style>{NAV_CSS}</style><nav><a href='/'>runs</a><a href='/run/{name}/-/episodes'>episodes</a>"
            f"<a href='/run/{name}/-/records'>records</a></nav>"
        )
        return HTMLResponse(html.replace("<h1>", nav + "<h1>", 1))

    return app


def _cell(v: Any) -> str:
    text = v if isinstance(v, str) else json.dumps(v, default=str)
    return text if len(text) <= 400 else text[:400] + " …"


def serve(root: str | Path, host: str = "127.0.0.1", port: int = 8000) -> None:
    import uvicorn

    uvicorn.run(create_app(root), host=host, port=port, log_level="warning")
