"""`selflab view` routes without a browser: run list, reports, judge records filtered by field."""

from __future__ import annotations

import json
import re

from fastapi.testclient import TestClient

from selflab.runs import RunDir
from selflab.view import create_app


def _judgments(tmp_path):  # type: ignore[no-untyped-def]
    run = RunDir.create(tmp_path / "runs" / "bench", config={}, seed=0, command="selflab bench judges")
    log = run.records("judgments")
    for i in range(6):
        log.append({"judge": "rubric" if i % 2 else "pairwise", "unit": {"mode": "pointwise", "perturbation": "none" if i < 3 else "position"},
                    "score": i, "parse_error": None if i != 4 else "no score line", "raw": f"text {i}"})  # fmt: skip
    return tmp_path / "runs"


def _count(html: str) -> str:
    return re.findall(r"<p id='count'>([^<]*)", html)[0]


def test_records_filter_by_facets_and_text(tmp_path) -> None:  # type: ignore[no-untyped-def]
    client = TestClient(create_app(_judgments(tmp_path)))
    index = client.get("/")
    assert index.status_code == 200 and "/run/bench/" in index.text
    page = client.get("/run/bench/-/records/judgments")
    assert set(re.findall(r"<select name='([^']+)'", page.text)) >= {"parsed", "judge", "unit.perturbation"}
    assert _count(page.text).startswith("6 of 6")
    q = {"judge": json.dumps("rubric"), "unit.perturbation": json.dumps("position")}
    assert _count(client.get("/run/bench/-/records/judgments", params=q).text).startswith("2 of 6")
    assert _count(client.get("/run/bench/-/records/judgments", params={"parsed": "false"}).text).startswith(
        "1 of 6"
    )
    assert _count(client.get("/run/bench/-/records/judgments", params={"q": "TEXT 5"}).text).startswith(
        "1 of 6"
    )


def test_report_page_and_unknown_paths(tmp_path) -> None:  # type: ignore[no-untyped-def]
    client = TestClient(create_app(_judgments(tmp_path)))
    assert client.get("/run/bench/").status_code == 200
    assert client.get("/run/nope/").status_code == 404
    assert client.get("/run/../../etc/").status_code == 404
    assert client.get("/run/bench/-/episode/episodes/0").status_code == 404


def test_episodes_from_loop_stage_logs(tmp_path) -> None:  # type: ignore[no-untyped-def]
    run = RunDir.create(tmp_path / "runs" / "selfplay", config={"loop": "game-selfplay"}, seed=0)
    ep = {"episode_id": "ev-0", "env_id": "perudo-v0", "agents": ["learner", "scripted"], "winners": [0],
          "steps": [{"turn": 1, "player": 0, "parsed_action": "zz", "raw_output": "RAW!", "error": {"kind": "parse", "reason": "bad"}}],
          "transcript": [{"turn": 0, "sender": -1, "text": "start", "type": "public"}]}  # fmt: skip
    log = run.records("iter-0.evaluate")
    log.append(ep)
    log.append({"assessment": "I will win", "episode": "ev-0"})
    client = TestClient(create_app(tmp_path / "runs"))
    page = client.get("/run/selfplay/-/episodes").text
    assert "iter-0.evaluate" in page and "ev-0" in page
    replay = client.get("/run/selfplay/-/episode/iter-0.evaluate/0")
    assert replay.status_code == 200 and "RAW!" in replay.text and "parse: bad" in replay.text
