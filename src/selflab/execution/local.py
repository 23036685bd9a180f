"""The default executor: every chunk in this process, one after another."""

from __future__ import annotations

from collections.abc import Callable

from selflab.execution.base import Chunk, ChunkFn, UnitResult, run_chunk


class LocalExecutor:
    """In process. Callers that batch work themselves (game episodes, sampling) keep their own
    in-process path when they see `in_process`; `map_units` with it is a plain loop."""

    name = "local"
    workers = 1
    in_process = True

    def default_chunk_size(self, n_units: int) -> int:
        return max(1, n_units)  # one call: the caller's own batching sees every unit at once

    def execute(self, chunks: list[Chunk], fn: ChunkFn, emit: Callable[[list[UnitResult]], None]) -> None:
        for chunk in chunks:
            emit(run_chunk(fn, chunk))

    def close(self) -> None:
        pass

    def __enter__(self) -> LocalExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
