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


def test_resume_with_another_seed_is_refused(tmp_path):
    """Records of two seeds in one run reproduce neither: the fix names the run's own seed."""
    RunDir.create(tmp_path / "r", config={}, seed=3)
    with pytest.raises(SelflabError, match="seed 3") as exc:
        RunDir.create(tmp_path / "r", config={}, seed=5, resume=True)
    assert "--seed 3" in exc.value.fix
    RunDir.create(tmp_path / "r", config={}, seed=3, resume=True)


def test_out_that_is_a_file_is_a_clear_error(tmp_path):
    (tmp_path / "f").write_text("notes\n")
    with pytest.raises(SelflabError, match="is a file"):
        RunDir.create(tmp_path / "f", seed=1)
    assert (tmp_path / "f").read_text() == "notes\n"


def test_damaged_run_yaml_is_a_clear_error(tmp_path):
    run = RunDir.create(tmp_path / "r", seed=1)
    (run.path / "run.yaml").write_text("seed: [\n")
    with pytest.raises(SelflabError, match="damaged") as exc:
        RunDir.create(tmp_path / "r", seed=1, resume=True)
    assert exc.value.fix


def test_run_yaml_is_never_half_written(tmp_path, monkeypatch):
    """A kill while run.yaml is written must not leave a half file that later blocks --resume."""
    from pathlib import Path

    real = Path.write_text

    def killed(self, data, *a, **k):
        real(self, data[: len(data) // 2], *a, **k)
        raise KeyboardInterrupt

    monkeypatch.setattr(Path, "write_text", killed)
    with pytest.raises(KeyboardInterrupt):
        RunDir.create(tmp_path / "r", config={"a": 1}, seed=1)
    monkeypatch.undo()
    assert not (tmp_path / "r" / "run.yaml").exists()
    assert RunDir.create(tmp_path / "r", config={"a": 1}, seed=1, resume=True).meta["seed"] == 1


def test_complete_last_line_without_newline_is_kept(tmp_path):
    """A file written by hand or another tool often lacks the final newline: its last record is
    whole (no strict prefix of a JSON object is one), so it is read and never cut by an append."""
    path = tmp_path / "a.jsonl"
    path.write_text('{"i": 1, "text": "a"}\n{"i": 2, "text": "b"}')
    log = RecordLog(path)
    assert [r.i for r in log.read(Rec)] == [1, 2] and log.dropped_lines == 0
    log.append(Rec(i=3, text="c"))
    assert [r.i for r in log.read(Rec)] == [1, 2, 3]


def test_a_run_in_use_by_another_process_is_refused(tmp_path):
    """Two processes resuming one run would both do the missing work and record it twice."""
    import subprocess
    import sys

    RunDir.create(tmp_path / "r", seed=1)  # this process now writes the run
    again = "from selflab.runs import RunDir; RunDir.create({!r}, seed=1, resume=True)"
    res = subprocess.run(
        [sys.executable, "-c", again.format(str(tmp_path / "r"))], capture_output=True, text=True, timeout=120
    )
    assert res.returncode != 0 and "in use by another selflab process" in res.stderr
    RunDir.create(tmp_path / "r", seed=1, resume=True)  # the same process may reopen it


def test_untrusted_text_with_a_lone_surrogate_is_recorded(tmp_path):
    """A server's JSON may hold "\\ud800" (model output is untrusted): writing it as UTF-8 fails,
    which crashed the run and, for a batch, wrote half of it. It is kept, read back equal."""
    bad = "x \ud800 y"
    log = RecordLog(tmp_path / "a.jsonl")
    log.extend([{"i": 1, "text": "ok"}, {"i": 2, "text": bad}])
    log.append(Rec(i=3, text=bad))
    assert [(r.i, r.text) for r in log.read(Rec)] == [(1, "ok"), (2, bad), (3, bad)]


def test_a_record_of_another_version_is_a_clear_error(tmp_path):
    path = tmp_path / "episodes.jsonl"
    path.write_text('{"i": 1, "text": "a"}\n{"i": 2}\n')
    with pytest.raises(SelflabError, match=r"record 2 is not a valid Rec \(text: Field required\)") as exc:
        RecordLog(path).read(Rec)
    assert "episodes.jsonl" in exc.value.problem and exc.value.fix


def test_an_unwritable_out_is_a_clear_error(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(SelflabError, match="cannot create run directory") as exc:
        RunDir.create(tmp_path / "f" / "run", seed=1)  # a parent that is a file: no folder possible
    assert "--out" in exc.value.fix
