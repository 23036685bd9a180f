"""Run directory: records survive crashes, stages resume, Parquet loads with `datasets`."""

from __future__ import annotations

import pytest
import yaml
from pydantic import BaseModel

from selflab.errors import SelflabError
from selflab.runs import RecordLog, RunDir


class Rec(BaseModel):
    i: int
    text: str


def test_append_and_read_roundtrip(tmp_path):
    log = RecordLog(tmp_path / "a.jsonl")
    log.extend([Rec(i=1, text="x"), Rec(i=2, text="ü\nnewline inside")])
    log.append({"i": 3, "text": "dict"})
    assert [r.i for r in log.read(Rec)] == [1, 2, 3]
    assert log.read(Rec)[1].text == "ü\nnewline inside"


def test_truncated_last_line_is_dropped_and_next_append_is_clean(tmp_path):
    path = tmp_path / "a.jsonl"
    log = RecordLog(path)
    log.extend([Rec(i=1, text="a"), Rec(i=2, text="b")])
    with open(path, "a") as f:  # a crash in the middle of writing record 3
        f.write('{"i": 3, "text": "hal')
    assert [r.i for r in log.read(Rec)] == [1, 2]
    assert log.dropped_lines == 1
    log.append(Rec(i=4, text="d"))
    assert [r.i for r in log.read(Rec)] == [1, 2, 4]
    assert log.dropped_lines == 0


def test_single_partial_line_file(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_text('{"i": 1, "te')
    log = RecordLog(path)
    assert log.read(Rec) == []
    log.append(Rec(i=2, text="x"))
    assert [r.i for r in log.read(Rec)] == [2]


def test_corrupt_middle_line_skipped_not_parsed(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_text('{"i": 1, "text": "a"}\nnot json\n[1,2]\n{"i": 2, "text": "b"}\n')
    log = RecordLog(path)
    assert [r.i for r in log.read(Rec)] == [1, 2]
    assert log.dropped_lines == 2


def test_run_yaml_has_versions_and_no_secrets(tmp_path):
    run = RunDir.create(
        tmp_path / "r", config={"model": "x", "api_key": "sk-123", "nested": {"token": "t"}}, seed=7
    )
    meta = yaml.safe_load((run.path / "run.yaml").read_text())
    assert meta["seed"] == 7
    assert "torch" in meta["packages"]
    assert "sk-123" not in (run.path / "run.yaml").read_text()
    assert meta["config"]["nested"]["token"] == "<redacted>"


def test_settings_that_mention_tokens_are_not_redacted(tmp_path):
    cfg = {"max_new_tokens": 64, "hf_token": "hf_abc", "key_env": "OPENAI_API_KEY", "OPENAI_API_KEY": "sk-1"}
    run = RunDir.create(tmp_path / "r", config=cfg, seed=1)
    saved = run.meta["config"]
    assert saved["max_new_tokens"] == 64 and saved["key_env"] == "OPENAI_API_KEY"
    assert saved["hf_token"] == "<redacted>" and saved["OPENAI_API_KEY"] == "<redacted>"


def test_existing_run_refused_without_resume(tmp_path):
    RunDir.create(tmp_path / "r", config={}, seed=1)
    with pytest.raises(SelflabError, match="--resume"):
        RunDir.create(tmp_path / "r", config={}, seed=1)
    RunDir.create(tmp_path / "r", config={}, seed=1, resume=True)


def test_stage_skipped_on_resume_and_not_marked_on_failure(tmp_path):
    run = RunDir.create(tmp_path / "r", seed=1)
    calls = []
    with run.stage("gen") as s:
        if not s.done:
            calls.append("gen")
    with pytest.raises(RuntimeError):
        with run.stage("train") as s:
            if not s.done:
                raise RuntimeError("killed")
    resumed = RunDir.create(tmp_path / "r", seed=1, resume=True)
    with resumed.stage("gen") as s:
        if not s.done:
            calls.append("gen-again")
    assert calls == ["gen"]
    assert resumed.is_complete("gen") and not resumed.is_complete("train")


def test_parquet_export_loads_with_datasets(tmp_path):
    import datasets

    run = RunDir.create(tmp_path / "r", seed=1)
    p = run.export_parquet("pairs", [{"prompt": "p", "chosen": "a", "rejected": "b"}] * 3)
    ds = datasets.load_dataset("parquet", data_files=str(p), split="train")
    assert len(ds) == 3 and ds[0]["chosen"] == "a"
