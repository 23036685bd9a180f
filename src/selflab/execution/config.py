"""One setting selects where units run: `executor: ray` in a config, `--executor ray --workers N` on the CLI."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from selflab.errors import ConfigError
from selflab.execution.base import Executor


class ExecutorConfig(BaseModel):
    """Where stages that fan out (game episodes, sampling, judge batches) run. A plain string
    ("local" or "ray") is accepted for `kind`, so configs can say `executor: ray`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["local", "ray"] = "local"
    workers: int = Field(2, ge=1, description="Ray worker actors")
    address: str | None = Field(None, description="Ray cluster address (HOST:PORT); None starts Ray here")
    num_cpus: float = Field(1.0, ge=0.0, description="CPUs per worker")
    num_gpus: float = Field(0.0, ge=0.0, description="GPUs per worker (fractions share a GPU)")
    max_retries: int = Field(2, ge=0, description="retries of a unit whose worker died")
    chunk_size: int | None = Field(None, ge=1, description="units per task; None: about 4 chunks per worker")

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, value: Any) -> Any:
        return {"kind": value} if isinstance(value, str) else value


def make_executor(
    config: ExecutorConfig | str | None = None, models: list[str] | None = None, **overrides: Any
) -> Executor:
    """Build the executor a config names. `models`: spec strings every Ray worker loads at start."""
    if config is None or isinstance(config, str):
        config = ExecutorConfig.model_validate(config or "local")
    if overrides:
        config = config.model_copy(update={k: v for k, v in overrides.items() if v is not None})
    if config.kind == "local":
        from selflab.execution.local import LocalExecutor

        return LocalExecutor()
    if config.kind == "ray":
        from selflab.execution.ray_executor import RayExecutor

        preflight(config)
        return RayExecutor(
            config.workers,
            address=config.address,
            num_cpus=config.num_cpus,
            num_gpus=config.num_gpus,
            max_retries=config.max_retries,
            models=models or (),
        )
    raise ConfigError(f"unknown executor {config.kind!r}", "use executor: local or executor: ray")


def from_cli(executor: str, workers: int | None, address: str | None) -> ExecutorConfig:
    """The `--executor/--workers/--ray-address` flags as a config (flags for Ray without `--executor ray`
    are an error, not silently ignored)."""
    if executor not in ("local", "ray"):
        raise ConfigError(f"unknown --executor {executor!r}", "use --executor local or --executor ray")
    if executor == "local" and (address or (workers or 1) > 1):
        raise ConfigError("--workers/--ray-address need --executor ray", "add --executor ray")
    return ExecutorConfig(kind=executor, workers=workers or 2, address=address)  # type: ignore[arg-type]


def preflight(config: ExecutorConfig) -> None:
    """Fail before anything is written when Ray is missing or the cluster address does not answer."""
    if config.kind == "ray":
        from selflab.execution.ray_executor import check_address, import_ray

        import_ray()
        if config.address:
            check_address(config.address)
