"""The run directory: everything one run produced, laid out so a killed run can resume.

```
runs/<name>/
  run.yaml          config, package versions, seed, git commit (never secrets)
  records/*.jsonl   append-only typed records
  data/*.parquet    datasets handed to training (loadable by `datasets`)
  checkpoints/      model checkpoints
  metrics.jsonl     one line per evaluation
  stages.jsonl      completed stages, for --resume
  .lock             held by the process writing the run (a second one is refused)
```
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import importlib.metadata
import os
import platform
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from selflab.errors import SelflabError
from selflab.runs.records import RecordLog

TRACKED_PACKAGES = (
    "selflab",
    "torch",
    "transformers",
    "trl",
    "peft",
    "datasets",
    "accelerate",
    "numpy",
    "pydantic",
)
# Whole key names only: "max_new_tokens" is a setting, "api_key" / "hf_token" are secrets.
_SECRET_KEY = re.compile(
    r"^(.*[_-])?(api[_-]?key|secret|password|passwd|authorization|bearer|token|access[_-]?token|auth[_-]?token)$",
    re.IGNORECASE,
)
_NAME = re.compile(r"^[A-Za-z0-9_.\-]+$")


def _versions() -> dict[str, str]:
    out: dict[str, str] = {}
    for pkg in TRACKED_PACKAGES:
        try:
            out[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            continue
    return out


def _git_commit() -> str | None:
    try:
        here = Path(__file__).resolve().parent
        res = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5, check=False
        )
        return res.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def scrub_secrets(value: Any) -> Any:
    """Replace values under secret-looking keys so run.yaml never holds an API key."""
    if isinstance(value, dict):
        return {
            k: ("<redacted>" if _SECRET_KEY.search(str(k)) else scrub_secrets(v)) for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [scrub_secrets(v) for v in value]
    return value


try:
    import fcntl
except ImportError:  # Windows: no flock; runs there are not guarded against a second writer
    fcntl = None  # type: ignore[assignment]

_HELD: dict[Path, int] = {}  # run directories this process writes -> fd of their locked .lock


def _claim(path: Path) -> None:
    """Lock the run directory for the rest of this process. Why: two processes resuming one run at
    once would both find the same work missing, both do it and record it twice. Reopening a run in
    the same process (a command reusing a run, tests) is allowed."""
    if fcntl is None:
        return
    key = path.resolve()
    held = _HELD.pop(key, None)
    if held is not None:
        with contextlib.suppress(OSError):
            if os.stat(key / ".lock").st_ino == os.fstat(held).st_ino:
                _HELD[key] = held
                return
        os.close(held)  # the folder was removed and made again: lock the new one
    fd = os.open(key / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
        os.close(fd)
        if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
            return  # a filesystem without locks: run unguarded rather than not at all
        raise SelflabError(
            f"run directory {path} is in use by another selflab process"
            + (f" (pid {holder})" if holder else ""),
            "wait for it to finish (or stop it) before --resume, or choose another --out directory",
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    _HELD[key] = fd


def _taken(path: Path) -> SelflabError:
    return SelflabError(
        f"run directory {path} already holds a run",
        "pass --resume to continue it, or choose another --out directory",
    )


class StageRecord(BaseModel):
    name: str
    finished_at: str
    info: dict[str, Any] = {}


class RunDir:
    """Handle on one run directory. Create with `RunDir.create`, reopen with `RunDir.open`."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._stages = RecordLog(self.path / "stages.jsonl")
        self.metrics = RecordLog(self.path / "metrics.jsonl")

    # -- lifecycle -------------------------------------------------------------------------
    @classmethod
    def create(
        cls,
        path: str | Path,
        config: BaseModel | dict[str, Any] | None = None,
        seed: int | None = None,
        resume: bool = False,
        command: str | None = None,
    ) -> RunDir:
        """Start a run in `path`. An existing non-empty run is refused unless `resume=True`,
        so nothing recorded is overwritten by accident; a resume with another seed than the run's
        is refused, and so is a run another process is writing (see `_claim`)."""
        path = Path(path)
        run = cls(path)
        if path.exists() and not path.is_dir():
            raise SelflabError(
                f"run directory {path} is a file, not a folder", "choose another --out directory"
            )
        existed = (path / "run.yaml").exists()
        if existed:
            if not resume:
                raise _taken(path)
            saved_seed = run.meta.get("seed")
            # the seed drives every random choice: records of two seeds in one run mean neither
            if seed is not None and saved_seed is not None and saved_seed != seed:
                raise SelflabError(
                    f"run directory {path} was started with seed {saved_seed}, not {seed}",
                    f"resume with --seed {saved_seed}, or choose another --out directory",
                )
        try:
            path.mkdir(parents=True, exist_ok=True)
            _claim(path)
            if not resume and not existed and (path / "run.yaml").exists():
                raise _taken(path)  # another process started a run here in the meantime
            for sub in ("records", "data", "checkpoints"):
                (path / sub).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SelflabError(
                f"cannot create run directory {path}: {exc.strerror or exc}",
                "choose an --out directory you can write to",
            ) from exc
        if not (path / "run.yaml").exists():
            cfg = config.model_dump(mode="json") if isinstance(config, BaseModel) else dict(config or {})
            meta = {
                "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                "seed": seed,
                "command": command,
                "git_commit": _git_commit(),
                "python": platform.python_version(),
                "packages": _versions(),
                "config": scrub_secrets(cfg),
            }
            # atomic: a kill mid-write must not leave a half run.yaml that blocks --resume
            tmp = path / "run.yaml.tmp"
            tmp.write_text(yaml.safe_dump(meta, sort_keys=False), encoding="utf-8")
            tmp.replace(path / "run.yaml")
        return run

    @classmethod
    def open(cls, path: str | Path) -> RunDir:
        path = Path(path)
        if not (path / "run.yaml").exists():
            raise SelflabError(f"{path} is not a selflab run directory (no run.yaml)", "check the path")
        return cls(path)

    @property
    def meta(self) -> dict[str, Any]:
        """run.yaml as a mapping; a damaged file is a SelflabError naming it, never a YAML traceback."""
        path = self.path / "run.yaml"
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            raise SelflabError(
                f"{path} is damaged (not readable YAML)",
                "restore it from a backup, or start the run again in another --out directory",
            ) from exc
        if loaded is None:
            return {}
        if not isinstance(loaded, dict):
            raise SelflabError(
                f"{path} is damaged (not a mapping)", "restore it, or use another --out directory"
            )
        return loaded

    # -- records ---------------------------------------------------------------------------
    def records(self, name: str) -> RecordLog:
        if not _NAME.match(name):
            raise SelflabError(f"invalid record log name {name!r}", "use letters, digits, '_', '-', '.'")
        return RecordLog(self.path / "records" / f"{name}.jsonl")

    def export_parquet(self, name: str, rows: list[dict[str, Any]] | list[BaseModel]) -> Path:
        """Write rows to data/<name>.parquet (via `datasets`, so it loads back with
        `datasets.load_dataset("parquet", data_files=...)`)."""
        import datasets

        dicts = [r.model_dump(mode="json") if isinstance(r, BaseModel) else r for r in rows]
        target = self.path / "data" / f"{name}.parquet"
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(".parquet.tmp")
        datasets.Dataset.from_list(dicts).to_parquet(str(tmp))
        tmp.replace(target)
        return target

    # -- stages and resume -----------------------------------------------------------------
    def completed_stages(self) -> dict[str, StageRecord]:
        return {s.name: s for s in self._stages.read(StageRecord)}

    def is_complete(self, name: str) -> bool:
        return name in self.completed_stages()

    def mark_complete(self, name: str, **info: Any) -> None:
        self._stages.append(
            StageRecord(
                name=name, finished_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), info=info
            )
        )

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[Stage]:
        """`with run.stage("judge-0") as s: if not s.done: ...` — the body checks `s.done`
        (already complete on a resumed run) and the stage is marked complete only if the body
        finishes without an exception."""
        s = Stage(name=name, done=self.is_complete(name))
        yield s
        if not s.done:
            self.mark_complete(name, **s.info)


class Stage:
    """A stage inside `RunDir.stage`: `done` is True when it was completed by an earlier run."""

    def __init__(self, name: str, done: bool) -> None:
        self.name = name
        self.done = done
        self.info: dict[str, Any] = {}
