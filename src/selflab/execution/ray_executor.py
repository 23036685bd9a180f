"""Run units on Ray worker actors (the `ray` extra), as OpenRLHF, verl and NeMo-RL do for rollouts.

Each actor is a long-lived process that builds its own model backends from spec strings (cached
per process by `load_model`), so weights load once per worker, never travel through the object
store, and never need pickling. The driver hands out chunks of units, one chunk in flight per
actor, and emits each chunk's results as soon as it is back. When an actor dies (its node was
lost, it ran out of memory) its chunk is retried, split into single units so that one poisonous
unit cannot take the others down with it, and a replacement actor is started; a unit that fails
`max_retries + 1` times is returned as a failure. Results never depend on the number of workers,
because units carry their own seeds.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from selflab.errors import ConfigError, SelflabError
from selflab.execution.base import Chunk, ChunkFn, UnitResult, run_chunk

log = logging.getLogger(__name__)

RAY_VERSION = "2.60.0"
INSTALL = f"pip install 'selflab[ray]'  (or: pip install 'ray=={RAY_VERSION}')"


def import_ray() -> Any:
    """Import Ray or say how to install it."""
    try:
        import ray
    except ImportError as exc:
        raise SelflabError("executor 'ray' needs Ray, which is not installed", INSTALL) from exc
    return ray


def check_address(address: str, timeout_s: float = 5.0) -> None:
    """Fail fast, with the fix, when a cluster address does not answer (Ray itself retries for minutes)."""
    if address in ("auto", "local"):
        return
    target = address.split("://", 1)[-1]
    host, sep, port = target.rpartition(":")
    if not sep or not port.isdigit():
        raise ConfigError(
            f"Ray address {address!r} is not HOST:PORT",
            "pass the head node's GCS address, e.g. --ray-address 10.0.0.1:6379 (or ray://HOST:10001)",
        )
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s):
            pass
    except OSError as exc:
        raise SelflabError(
            f"cannot reach a Ray cluster at {address} ({exc})",
            "start one with `ray start --head` on the head node, check host, port and firewall, "
            "or drop --ray-address to start a local Ray instance",
        ) from exc


class _Worker:
    """The actor body (wrapped with `ray.remote` at run time, so importing this module needs no Ray)."""

    def __init__(self, models: Sequence[str], env: dict[str, str]) -> None:
        os.environ.update(env)
        self.name = f"{socket.gethostname()}:{os.getpid()}"
        if models:
            from selflab.models import load_model

            for spec in models:  # build each backend here, from its spec, once per worker process
                load_model(spec)

    def ready(self) -> str:
        return self.name

    def run(self, fn: ChunkFn, chunk: Chunk) -> list[UnitResult]:
        return run_chunk(fn, chunk, worker=self.name)


class RayExecutor:
    """`workers` Ray actors, each with `num_cpus` / `num_gpus`; connects to `address` or starts Ray here."""

    name = "ray"
    in_process = False

    def __init__(
        self,
        workers: int = 2,
        *,
        address: str | None = None,
        num_cpus: float = 1.0,
        num_gpus: float = 0.0,
        max_retries: int = 2,
        models: Sequence[str] = (),
        start_timeout_s: float = 300.0,
        object_store_mb: int | None = None,
        runtime_env: dict[str, Any] | None = None,
    ) -> None:
        if workers < 1:
            raise ConfigError(f"workers must be at least 1, got {workers}", "pass --workers 1 or more")
        self.workers = workers
        self.address = address
        self.num_cpus = num_cpus
        self.num_gpus = num_gpus
        self.max_retries = max_retries
        self.models = list(models)
        self.start_timeout_s = start_timeout_s
        self.object_store_mb = object_store_mb
        self.runtime_env = runtime_env
        self._ray: Any = None
        self._actor_cls: Any = None
        self._idle: list[Any] = []
        self._names: dict[Any, str] = {}
        self._started_here = False

    # -- connection and actors -----------------------------------------------------------------
    def start(self) -> RayExecutor:
        """Connect (or start local Ray) and start the actors; `execute` calls it when needed."""
        if self._ray is not None:
            return self
        ray = import_ray()
        if not ray.is_initialized():
            kwargs: dict[str, Any] = dict(
                include_dashboard=False, log_to_driver=True, logging_level=logging.WARNING
            )
            if self.runtime_env:
                kwargs["runtime_env"] = self.runtime_env
            if self.address:
                check_address(self.address)
                try:
                    ray.init(address=self.address, **kwargs)
                except Exception as exc:  # noqa: BLE001 - Ray raises several types for a bad cluster
                    raise SelflabError(
                        f"cannot connect to the Ray cluster at {self.address}: {exc}",
                        f"check that the head runs the same Ray version ({ray.__version__}) and Python",
                    ) from exc
            else:
                cpus = max(os.cpu_count() or 1, math.ceil(self.workers * self.num_cpus))
                if self.object_store_mb:
                    kwargs["object_store_memory"] = self.object_store_mb * 1024 * 1024
                ray.init(num_cpus=cpus, **kwargs)
            self._started_here = True
        self._ray = ray
        self._actor_cls = ray.remote(_Worker).options(
            num_cpus=self.num_cpus, num_gpus=self.num_gpus, max_restarts=0
        )
        return self

    def _spawn(self) -> tuple[Any, Any]:
        env = {k: v for k, v in os.environ.items() if k in ("PYTHONPATH", "HF_HOME", "SELFLAB_CACHE")}
        actor = self._actor_cls.remote(self.models, env)
        return actor, actor.ready.remote()

    def default_chunk_size(self, n_units: int) -> int:
        """About four chunks per worker: big enough to batch model calls inside a chunk, small
        enough that a lost worker costs little and the last chunks balance across workers."""
        return max(1, math.ceil(n_units / (4 * self.workers)))

    # -- scheduling ----------------------------------------------------------------------------
    def execute(self, chunks: list[Chunk], fn: ChunkFn, emit: Callable[[list[UnitResult]], None]) -> None:
        self.start()
        ray = self._ray
        fn_ref = ray.put(fn)
        pending: deque[tuple[Chunk, int]] = deque((c, 1) for c in chunks)
        inflight: dict[Any, tuple[Any, Chunk, int]] = {}
        starting: dict[Any, tuple[Any, float]] = {}
        spawns_left = self.workers + len(chunks) * (self.max_retries + 1)  # bounded replacements
        for _ in range(max(0, self.workers - len(self._idle))):
            actor, ref = self._spawn()
            starting[ref] = (actor, time.monotonic())
        while pending or inflight:
            while pending and self._idle:
                actor = self._idle.pop()
                chunk, attempt = pending.popleft()
                inflight[actor.run.remote(fn_ref, chunk)] = (actor, chunk, attempt)
            if not inflight and not starting:
                if spawns_left <= 0:
                    self._fail(pending, "no Ray worker left to run this unit", emit)
                    return
                actor, ref = self._spawn()
                spawns_left -= 1
                starting[ref] = (actor, time.monotonic())
            ready, _ = ray.wait([*inflight, *starting], num_returns=1, timeout=1.0)
            if not ready:
                if not inflight and all(
                    time.monotonic() - t > self.start_timeout_s for _, t in starting.values()
                ):
                    for actor, _ in starting.values():
                        ray.kill(actor)
                    starting.clear()
                    self._fail(pending, self._no_start_reason(), emit)
                    return
                continue
            ref = ready[0]
            if ref in starting:
                actor, _ = starting.pop(ref)
                try:
                    self._names[actor] = ray.get(ref)
                    self._idle.append(actor)
                except Exception as exc:  # noqa: BLE001 - a worker that cannot start is replaced
                    log.warning("a Ray worker failed to start: %s", exc)
                    ray.kill(actor)
                continue
            actor, chunk, attempt = inflight.pop(ref)
            try:
                results = ray.get(ref)
            except Exception as exc:  # noqa: BLE001 - a dead worker: retry its units elsewhere
                name = self._names.pop(actor, "?")
                log.warning(
                    "Ray worker %s lost %d unit(s) (attempt %d): %s",
                    name,
                    len(chunk),
                    attempt,
                    type(exc).__name__,
                )
                ray.kill(actor, no_restart=True)
                if spawns_left > 0:
                    new, new_ref = self._spawn()
                    spawns_left -= 1
                    starting[new_ref] = (new, time.monotonic())
                if attempt <= self.max_retries:
                    pending.extendleft(([item], attempt + 1) for item in reversed(chunk))
                else:
                    reason = f"worker {name} died {attempt} time(s) on this unit: {type(exc).__name__}: {exc}"
                    emit(
                        [
                            UnitResult(uid, error=reason[:2000], attempts=attempt, worker=name)
                            for uid, _ in chunk
                        ]
                    )
                continue
            for r in results:
                r.attempts = attempt
            self._idle.append(actor)
            emit(results)
        for actor, _ in starting.values():  # replacements nobody needed any more
            ray.kill(actor)

    def _fail(
        self, pending: deque[tuple[Chunk, int]], reason: str, emit: Callable[[list[UnitResult]], None]
    ) -> None:
        while pending:
            chunk, attempt = pending.popleft()
            emit([UnitResult(uid, error=reason, attempts=attempt - 1, worker="-") for uid, _ in chunk])

    def _no_start_reason(self) -> str:
        res = self._ray.available_resources() if self._ray is not None else {}
        return (
            f"no Ray worker could start within {self.start_timeout_s:.0f} s: each needs num_cpus={self.num_cpus}, "
            f"num_gpus={self.num_gpus}; the cluster has {res.get('CPU', 0)} CPU / {res.get('GPU', 0)} GPU free"
        )

    def close(self) -> None:
        """Stop the actors (and Ray, if this executor started it)."""
        if self._ray is None:
            return
        for actor in self._idle:
            try:
                self._ray.kill(actor)
            except Exception:  # noqa: BLE001 - already gone
                pass
        self._idle.clear()
        if self._started_here:
            self._ray.shutdown()
        self._ray = None

    def __enter__(self) -> RayExecutor:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
