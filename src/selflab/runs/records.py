"""Append-only JSONL logs of typed records.

Why a class of its own: a run killed mid-write leaves a half line at the end of a file. That line
must be detected and dropped (never parsed as data), and the next append must not glue onto it.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from pydantic_core import PydanticSerializationError

from selflab.config import describe_validation_error
from selflab.errors import SelflabError

T = TypeVar("T", bound=BaseModel)


def _to_json(record: BaseModel | dict[str, Any]) -> str:
    """One JSON line. Model output is untrusted: a lone surrogate ("\\ud800" from a server's JSON)
    cannot be written as UTF-8, so such a record is written with ASCII escapes (read back equal)."""
    try:
        if isinstance(record, BaseModel):
            return record.model_dump_json()
        line = json.dumps(record, ensure_ascii=False, default=str)
        line.encode("utf-8")
        return line
    except (UnicodeEncodeError, PydanticSerializationError):
        data = record.model_dump(mode="json") if isinstance(record, BaseModel) else record
        return json.dumps(data, ensure_ascii=True, default=str)


def _whole_object(line: str) -> bool:
    """Whether `line` is one complete JSON object. No strict prefix of a JSON object is one, so a
    last line cut by a crash never passes, and a complete one that only lacks its newline does."""
    try:
        return isinstance(json.loads(line), dict)
    except json.JSONDecodeError:
        return False


class RecordLog:
    """One `*.jsonl` file: one JSON object per line, appended and flushed line by line."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self.dropped_lines = 0  # corrupt or truncated lines seen by the last read

    def _repair_tail(self) -> None:
        """Drop a trailing partial line (no final newline) left by a crash, so appends stay clean.
        A last line that is a whole JSON object only lacks its newline (a file written by hand or
        by another tool): it is a record, so it gets its newline instead of being cut."""
        if not self.path.exists() or self.path.stat().st_size == 0:
            return
        with open(self.path, "rb+") as f:
            f.seek(-1, os.SEEK_END)
            if f.read(1) == b"\n":
                return
            data = self.path.read_bytes()
            cut = data.rfind(b"\n") + 1  # 0 when the file holds a single partial line
            if _whole_object(data[cut:].decode("utf-8", errors="replace")):
                f.seek(0, os.SEEK_END)
                f.write(b"\n")
            else:
                f.truncate(cut)

    def append(self, record: BaseModel | dict[str, Any]) -> None:
        self.extend([record])

    def extend(self, records: Iterable[BaseModel | dict[str, Any]]) -> None:
        lines = [_to_json(r) + "\n" for r in records]
        if not lines:
            return
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._repair_tail()
            with open(self.path, "a", encoding="utf-8") as f:
                f.writelines(lines)
                f.flush()
                os.fsync(f.fileno())

    def iter_dicts(self) -> Iterator[dict[str, Any]]:
        """Yield every complete, valid line. A last line without its newline is a crash remnant
        and is skipped unless it is a whole JSON object; so is any line that is not a JSON object
        (counted in `dropped_lines`)."""
        self.dropped_lines = 0
        if not self.path.exists():
            return
        with open(self.path, encoding="utf-8", errors="replace") as f:
            for line in f:
                if not line.endswith("\n") and not _whole_object(line):
                    self.dropped_lines += 1
                    break
                line = line.strip()
                if not line:
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError:
                    self.dropped_lines += 1
                    continue
                if isinstance(obj, dict):
                    yield obj
                else:
                    self.dropped_lines += 1

    def read(self, model: type[T]) -> list[T]:
        """Every record as `model`; one that does not fit (a log of another selflab version) is a
        SelflabError naming the file and the record, never a validation traceback."""
        out = []
        for i, d in enumerate(self.iter_dicts()):
            try:
                out.append(model.model_validate(d))
            except ValidationError as exc:
                raise SelflabError(
                    f"{self.path}: record {i + 1} is not a valid {model.__name__} "
                    f"({describe_validation_error(exc)})",
                    "the log was written by another selflab version or edited: move it aside "
                    "(or start a new --out directory) and run again",
                ) from exc
        return out

    def read_dicts(self) -> list[dict[str, Any]]:
        return list(self.iter_dicts())

    def __len__(self) -> int:
        return sum(1 for _ in self.iter_dicts())

    def exists(self) -> bool:
        return self.path.exists()
