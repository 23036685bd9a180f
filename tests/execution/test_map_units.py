"""map_units in process, unit seeds, executor config and the clear errors (no Ray needed)."""

from __future__ import annotations

import builtins
import sys

import pytest

from selflab.errors import ConfigError, SelflabError
from selflab.execution import (
    ExecutorConfig,
    LocalExecutor,
    PerUnit,
    from_cli,
    make_executor,
    map_units,
    unit_seed,
)


def _square_or_fail(x: dict) -> int:
    if x["v"] == 3:
        raise ValueError("three is bad")
    return x["v"] ** 2


def test_unit_seed_is_stable_and_distinct() -> None:
    assert unit_seed(0, "ep00001") == unit_seed(0, "ep00001")
    assert len({unit_seed(0, f"u{i}") for i in range(100)}) == 100
    assert unit_seed(0, "a") != unit_seed(1, "a") and 0 <= unit_seed(5, "x") < 2**31


def test_map_units_keeps_order_and_isolates_a_failing_unit() -> None:
    units = [{"id": f"u{i}", "v": i} for i in range(6)]
    seen = []
    out = map_units(units, PerUnit(_square_or_fail), LocalExecutor(), chunk_size=4, on_result=seen.append)
    assert [r.unit_id for r in out] == [f"u{i}" for i in range(6)]
    assert [r.value for r in out if r.ok] == [0, 1, 4, 16, 25]
    bad = out[3]
    assert not bad.ok and "three is bad" in (bad.error or "") and len(seen) == 6


def test_duplicate_ids_are_refused() -> None:
    with pytest.raises(ConfigError, match="duplicate"):
        map_units(["a", "a"], PerUnit(len))


def test_config_accepts_a_plain_string_and_cli_flags() -> None:
    assert ExecutorConfig.model_validate("ray").kind == "ray"
    assert isinstance(make_executor("local"), LocalExecutor)
    assert from_cli("ray", 3, "10.0.0.1:6379").workers == 3
    with pytest.raises(ConfigError, match="--executor ray"):
        from_cli("local", 4, None)
    with pytest.raises(ConfigError):
        from_cli("dask", None, None)


def test_ray_missing_gives_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    real_import = builtins.__import__

    def no_ray(name: str, *args: object, **kwargs: object) -> object:
        if name == "ray" or name.startswith("ray."):
            raise ImportError("No module named 'ray'")
        return real_import(name, *args, **kwargs)

    monkeypatch.delitem(sys.modules, "ray", raising=False)
    monkeypatch.setattr(builtins, "__import__", no_ray)
    with pytest.raises(SelflabError, match=r"pip install 'selflab\[ray\]'"):
        make_executor("ray")


def test_unreachable_address_is_a_clear_error() -> None:
    from selflab.execution.ray_executor import check_address

    with pytest.raises(SelflabError, match="cannot reach a Ray cluster at 127.0.0.1:1"):
        check_address("127.0.0.1:1", timeout_s=2)
    with pytest.raises(ConfigError, match="HOST:PORT"):
        check_address("nonsense")
