"""Units of work, their results, and `map_units`: the one entry point every stage uses to fan out.

Why units: an episode, a judge batch or a group of samples is an independent piece of work with a
stable id. Its seed comes from the run seed and that id (`unit_seed`), never from the order or the
worker it runs on, so one worker, many workers or the plain in-process path give the same records.
Workers only compute; the caller's `on_result` (on the driver) is the only writer of the run
directory, and it sees each unit as soon as its chunk finishes, so a worker that dies later loses
nothing already recorded.
"""

from __future__ import annotations

import hashlib
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar, runtime_checkable

from pydantic import BaseModel

from selflab.errors import ConfigError

U = TypeVar("U")
R = TypeVar("R")

# A chunk is a list of (unit id, unit); `fn` maps a list of units to one result per unit.
Chunk = list[tuple[str, Any]]
ChunkFn = Callable[[list[Any]], Sequence[Any]]


def unit_seed(run_seed: int, unit_id: str) -> int:
    """A stable 31-bit seed from the run seed and a unit id (independent of workers and order)."""
    digest = hashlib.sha256(f"{run_seed}|{unit_id}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def unit_key(unit: Any) -> str:
    """The id of a unit: its `unit_id`, `episode_id` or `id` attribute (or key), or the string itself."""
    if isinstance(unit, str):
        return unit
    for name in ("unit_id", "episode_id", "id"):
        value = unit.get(name) if isinstance(unit, dict) else getattr(unit, name, None)
        if value is not None:
            return str(value)
    raise ConfigError(
        f"cannot tell the id of unit {type(unit).__name__}", "give it a unit_id attribute or pass key="
    )


@dataclass
class UnitResult(Generic[R]):
    """What one unit produced, or why it failed. `attempts` counts tries (retries after a worker died)."""

    unit_id: str
    value: R | None = None
    error: str | None = None
    attempts: int = 1
    worker: str = "local"

    @property
    def ok(self) -> bool:
        return self.error is None


class UnitFailure(BaseModel):
    """A unit given up on, as recorded in `records/<log>.failures.jsonl`. The unit is not in the main
    log, so `--resume` tries it again."""

    unit_id: str
    error: str
    attempts: int
    worker: str


def run_chunk(fn: ChunkFn, chunk: Chunk, worker: str = "local") -> list[UnitResult]:
    """Apply `fn` to a chunk on whatever process runs it. An exception in `fn` is a property of a
    unit, not of the worker: the chunk is split and each unit retried alone, so one bad unit fails
    alone and the others keep their results."""
    units = [u for _, u in chunk]
    try:
        values = list(fn(units))
        if len(values) != len(units):
            raise RuntimeError(f"unit function returned {len(values)} results for {len(units)} units")
    except Exception as err:  # noqa: BLE001 - recorded as the unit's failure, never crashes the run
        if len(chunk) > 1:
            return [r for item in chunk for r in run_chunk(fn, [item], worker)]
        detail = "".join(traceback.format_exception_only(type(err), err)).strip()
        return [UnitResult(chunk[0][0], error=detail, worker=worker)]
    return [UnitResult(uid, value=v, worker=worker) for (uid, _), v in zip(chunk, values, strict=True)]


class PerUnit:
    """Wrap a function of one unit as a chunk function (picklable when `fn` is a module-level function)."""

    def __init__(self, fn: Callable[[Any], Any]) -> None:
        self.fn = fn

    def __call__(self, units: list[Any]) -> list[Any]:
        return [self.fn(u) for u in units]


@runtime_checkable
class Executor(Protocol):
    """Runs chunks of units somewhere and hands each finished chunk's results back on the caller's
    thread, in completion order. `in_process` is True for the local executor: callers then keep
    their usual single-process path (nothing changes for the default)."""

    name: str
    workers: int
    in_process: bool

    def execute(self, chunks: list[Chunk], fn: ChunkFn, emit: Callable[[list[UnitResult]], None]) -> None: ...

    def default_chunk_size(self, n_units: int) -> int: ...

    def close(self) -> None: ...


def chunked(items: Chunk, size: int) -> list[Chunk]:
    size = max(1, size)
    return [items[i : i + size] for i in range(0, len(items), size)]


def map_units(
    units: Sequence[U],
    fn: ChunkFn,
    executor: Executor | None = None,
    *,
    key: Callable[[U], str] = unit_key,
    chunk_size: int | None = None,
    on_result: Callable[[UnitResult], None] | None = None,
) -> list[UnitResult]:
    """Run `fn` over `units` on `executor` (default: in this process) and return one `UnitResult`
    per unit, in the order of `units`.

    `fn(list_of_units) -> list_of_results` runs on a worker; it must be picklable and build anything
    heavy (a model) itself, from a spec string, e.g. with `selflab.models.load_model` (cached per
    worker process). `on_result` runs on the driver for each unit as its chunk finishes: write
    records there, and only there."""
    from selflab.execution.local import LocalExecutor

    executor = executor or LocalExecutor()
    items: Chunk = [(key(u), u) for u in units]
    ids = [uid for uid, _ in items]
    if len(set(ids)) != len(ids):
        dup = sorted({i for i in ids if ids.count(i) > 1})[:3]
        raise ConfigError(f"duplicate unit ids {dup}", "give every unit a unique id")
    results: dict[str, UnitResult] = {}

    def emit(batch: list[UnitResult]) -> None:
        for r in batch:
            if r.unit_id in results:  # a retried chunk can never be recorded twice
                continue
            results[r.unit_id] = r
            if on_result is not None:
                on_result(r)

    if items:
        size = chunk_size or executor.default_chunk_size(len(items))
        executor.execute(chunked(items, size), fn, emit)
    missing = [uid for uid in ids if uid not in results]
    for uid in missing:  # an executor bug must still leave one result per unit
        emit([UnitResult(uid, error="executor returned no result for this unit", attempts=0)])
    return [results[uid] for uid in ids]
