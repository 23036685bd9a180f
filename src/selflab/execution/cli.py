"""The executor flags every fan-out command shares: `--executor ray --workers N --ray-address HOST:PORT`."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Annotated

import typer

from selflab.execution.base import Executor
from selflab.execution.config import from_cli, make_executor, preflight

ExecutorOpt = Annotated[
    str, typer.Option("--executor", help="Where units run: local (in this process) or ray (worker actors).")
]
WorkersOpt = Annotated[int | None, typer.Option("--workers", min=1, help="Ray worker actors (default 2).")]
RayAddressOpt = Annotated[
    str | None,
    typer.Option("--ray-address", help="Ray cluster HOST:PORT (default: start Ray on this machine)."),
]


@contextlib.contextmanager
def open_executor(
    executor: str, workers: int | None, address: str | None, models: list[str] | None = None
) -> Iterator[Executor]:
    """The executor the flags name, closed (actors stopped) when the command ends."""
    ex = make_executor(from_cli(executor, workers, address), models=models)
    try:
        yield ex
    finally:
        ex.close()


def check_flags(executor: str, workers: int | None, address: str | None) -> None:
    """Validate the flags (and reach the cluster) before a command creates its run directory."""
    preflight(from_cli(executor, workers, address))
