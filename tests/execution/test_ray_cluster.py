"""Ray executor on a local 2-node cluster started inside the test (`ray.cluster_utils.Cluster`).

One cluster serves the module; the test that removes its worker node runs last.

- 1 worker, 2 workers and the in-process path give identical sorted records;
- killing a worker node mid-run loses nothing: its units are retried on the surviving worker, and
  resuming the run afterwards adds nothing and duplicates nothing.
"""

from __future__ import annotations

import sys
import time

import pytest

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'selflab[ray]')")

from ray.cluster_utils import Cluster  # noqa: E402

from selflab.envs.registry import make_agent  # noqa: E402
from selflab.envs.runner import play, schedule  # noqa: E402
from selflab.envs.trajectories import EpisodeRecord  # noqa: E402
from selflab.execution import PerUnit, UnitFailure, map_units, unit_seed  # noqa: E402
from selflab.execution.ray_executor import RayExecutor  # noqa: E402
from selflab.runs import RecordLog, RunDir  # noqa: E402

# Ray workers do not have this test module on their path: ship its functions by value.
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])

STORE = 80 * 1024 * 1024  # keep the object store small on a shared 2-core machine


def _start_cluster() -> Cluster:
    cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 1, "object_store_memory": STORE, "include_dashboard": False},
    )
    worker_node = cluster.add_node(num_cpus=1, object_store_memory=STORE)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, include_dashboard=False, log_to_driver=False)
    cluster.worker_node = worker_node  # type: ignore[attr-defined]
    return cluster


@pytest.fixture(scope="module")
def cluster():
    c = _start_cluster()
    try:
        yield c
    finally:
        ray.shutdown()
        c.shutdown()


class SlowAgents:
    """Scripted agents that take a little time per episode, so a node can die while it plays."""

    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s

    def __call__(self, episode):  # noqa: ANN001, ANN204
        time.sleep(self.delay_s)
        return [
            make_agent(episode.env_id, n, seed=episode.seed * 1000 + i) for i, n in enumerate(episode.agents)
        ]


def _comparable(records: list[EpisodeRecord]) -> list[dict]:
    return sorted((r.model_dump(exclude={"duration_s"}) for r in records), key=lambda d: d["episode_id"])


def _sample(unit: str) -> tuple[str, int]:
    import random

    return unit, random.Random(unit_seed(7, unit)).randrange(10**9)


def test_one_and_two_workers_give_identical_records_and_failures_are_recorded(cluster, tmp_path) -> None:
    specs = schedule("perudo-small-v0", ["scripted", "random"], 24, seed=3)
    local = play(specs).episodes
    runs = {}
    for workers in (1, 2):
        run = RunDir.create(tmp_path / f"w{workers}", config={}, seed=3)
        with RayExecutor(workers) as ex:
            result = play(specs, run=run, executor=ex)
        assert result.stats.episodes == 24
        runs[workers] = run.records("episodes").read(EpisodeRecord)
        assert not run.records("episodes.failures").exists()
    assert _comparable(runs[1]) == _comparable(runs[2]) == _comparable(local)
    # map_units over plain units: seeds from (run seed, unit id), whatever the worker count.
    units = [f"u{i}" for i in range(10)]
    outs = []
    for workers, chunk in ((1, 10), (2, 1)):
        with RayExecutor(workers) as ex:
            outs.append(sorted(r.value for r in map_units(units, PerUnit(_sample), ex, chunk_size=chunk)))
    assert outs[0] == outs[1] == sorted(_sample(u) for u in units)
    # a unit whose worker dies every time is retried, then recorded as a failure; the rest succeed
    log = RecordLog(tmp_path / "failures.jsonl")

    def on_result(r) -> None:  # noqa: ANN001
        if not r.ok:
            log.append(
                UnitFailure(unit_id=r.unit_id, error=r.error or "", attempts=r.attempts, worker=r.worker)
            )

    with RayExecutor(2, max_retries=1) as ex:
        out = map_units(["ok1", "die", "ok2"], PerUnit(_die_on), ex, chunk_size=1, on_result=on_result)
    assert [r.ok for r in out] == [True, False, True]
    assert out[1].attempts == 2 and "died" in (out[1].error or "")
    assert [f.unit_id for f in log.read(UnitFailure)] == ["die"]


def test_loop_sampling_on_ray_equals_in_process(cluster, tmp_path) -> None:
    from selflab.loops.measures import sample_answers_on
    from selflab.models.testing import tiny_llama
    from selflab.models.types import SamplingParams
    from selflab.tasks.arithmetic import arithmetic_tasks

    spec = f"hf:{tiny_llama(tmp_path / 'tiny')}"
    tasks = arithmetic_tasks(6, seed=1)
    sampling = SamplingParams(temperature=1.0, max_new_tokens=6)
    local = sample_answers_on(None, spec, tasks, 2, sampling, seed=5)
    with RayExecutor(2) as ex:
        remote = sample_answers_on(ex, spec, tasks, 2, sampling, seed=5)
    assert [a.model_dump() for a in remote] == [a.model_dump() for a in local]
    assert len(local) == 12 and not any(a.error for a in local)


class KillingLog(RecordLog):
    """The episodes log, which removes a worker node right after the first chunk is recorded."""

    def __init__(self, path, cluster: Cluster) -> None:  # noqa: ANN001
        super().__init__(path)
        self.cluster = cluster
        self.killed = False

    def append(self, record) -> None:  # noqa: ANN001
        super().append(record)
        if not self.killed:
            self.killed = True
            self.cluster.remove_node(self.cluster.worker_node)


class RunWithKill:
    def __init__(self, run: RunDir, cluster: Cluster) -> None:
        self.run = run
        self.cluster = cluster
        self.path = run.path

    def records(self, name: str) -> RecordLog:
        if name == "episodes":
            return KillingLog(self.run.records(name).path, self.cluster)
        return self.run.records(name)


def test_killing_a_worker_node_mid_run_then_resuming_loses_and_duplicates_nothing(cluster, tmp_path) -> None:
    specs = schedule("perudo-small-v0", ["scripted", "random"], 16, seed=11)
    reference = play(specs).episodes
    run = RunDir.create(tmp_path / "killed", config={}, seed=11)
    with RayExecutor(2, max_retries=2, start_timeout_s=30) as ex:
        # chunks of 2 episodes, 0.2 s each: the second worker is busy when its node goes away
        first = play(specs, run=RunWithKill(run, cluster), executor=ex, agent_factory=SlowAgents(0.1))
    assert first.stats.episodes == 16
    assert len(ray.nodes()) >= 2 and sum(1 for n in ray.nodes() if n["Alive"]) == 1
    again = play(specs, run=run, executor=RayExecutor(1))  # resume: everything is already there
    assert again.stats.episodes == 0
    stored = run.records("episodes").read(EpisodeRecord)
    assert len(stored) == 16 and len({r.episode_id for r in stored}) == 16
    assert _comparable(stored) == _comparable(reference)
    assert not run.records("episodes.failures").exists()


def _die_on(unit: str) -> str:
    import os

    if unit == "die":
        os._exit(1)  # the worker process dies mid-unit
    return unit.upper()
