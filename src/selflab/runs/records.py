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

from pydantic import BaseModel

T = TypeVar("T", bound=BaseModel)


def _to_json(record: BaseModel | dict[str, Any]) -> str:
    if isinstance(record, BaseModel):
        return record.model_dump_json()
    return json.dumps(record, ensure_ascii=False, default=str)


class RecordLog:
    """One `*.jsonl` file: one JSON object per line, appended and flushed line by line."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self.dropped_lines = 0  # corrupt or truncated lines seen by the last read

    def _repair_tail(self) -> None:
        """Drop a trailing partial line (no final newline) left by a crash, so appends stay clean."""
        if not self.path.exists() or self.path.stat().st_size == 0:
            return
        with open(self.path, "rb+") as f:
            f.seek(-1, os.SEEK_END)
            if f.read(1) == b"\n":
                return
            data = self.path.read_bytes()
            cut = data.rfind(b"\n") + 1  # 0 when the file holds a single partial line
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
        and is skipped; so is any line that is not a JSON object (counted in `dropped_lines`)."""
        self.dropped_lines = 0
        if not self.path.exists():
            return
        with open(self.path, encoding="utf-8", errors="replace") as f:
            for line in f:
                if not line.endswith("\n"):
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
        return [model.model_validate(d) for d in self.iter_dicts()]

    def read_dicts(self) -> list[dict[str, Any]]:
        return list(self.iter_dicts())

    def __len__(self) -> int:
        return sum(1 for _ in self.iter_dicts())

    def exists(self) -> bool:
        return self.path.exists()
