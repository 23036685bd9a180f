"""The loop framework: a loop is a configurable sequence of named stages run once per iteration
over a run directory, and every stage can be skipped on resume.

How to write a loop (see `verified_sft.py` for a complete one):

```python
@register_loop
class MyLoop(Loop):
    name = "my-loop"
    description = "one line for `selflab loops`"
    Config = MyConfig                      # a LoopConfig subclass (pydantic, loadable from YAML)
    baseline_stages = ("evaluate",)        # run once, as iteration 0, on the starting model
    stages = ("generate", "judge", "build", "train", "evaluate")

    def stage_generate(self, ctx: StageContext) -> None:
        model = self.load(self.policy_spec(ctx.iteration))
        ctx.out.extend(records)            # records/iter-<i>.generate.jsonl
        ctx.info["n"] = len(records)       # saved in stages.jsonl, shown in the report
```

Rules that make `--resume` exact:
- a stage writes only to its own log (`ctx.out`), to `ctx.data_path(...)`, and to
  `self.checkpoint_dir(i)`; when a stage did not complete, its log is deleted before it reruns,
  so nothing is duplicated;
- a stage reads earlier stages only through `self.read(iteration, stage, Model)`;
- every random choice is seeded from `self.seed_for(iteration, stage, ...)`, so a rerun produces
  the same records as the first attempt;
- the truth meter (`self.meter.record(...)`) is called last in an evaluate stage.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from abc import ABC
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict, Field
from rich.console import Console

from selflab.console import log as progress  # stage progress goes to stderr; results to self.console
from selflab.errors import ConfigError, SelflabError
from selflab.execution import Executor, ExecutorConfig, make_executor
from selflab.loops.truth_meter import IterationMetrics, TruthMeter, read_metrics
from selflab.runs import RecordLog, RunDir
from selflab.runs.metrics import RunFinished

T = TypeVar("T", bound=BaseModel)


class LoopConfig(BaseModel):
    """Settings every loop has. Subclasses add their own; unknown keys are errors (typos)."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field("smollm2-135m", description="starting model spec (smollm2-135m, hf:/path)")
    iterations: int = Field(2, ge=1, le=100)
    seed: int = 0
    report: bool = Field(True, description="write report.html at the end of the run")
    executor: ExecutorConfig = Field(
        default_factory=ExecutorConfig,
        description="where sampling runs: local, or ray (see selflab.execution)",
    )


@dataclass
class StageContext:
    """What a stage function gets: where it is, its output log, and a dict of summary info."""

    loop: Loop
    iteration: int
    stage: str
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return stage_key(self.iteration, self.stage)

    @property
    def out(self) -> RecordLog:
        return self.loop.stage_log(self.iteration, self.stage)

    def data_path(self, name: str) -> Path:
        return self.loop.run.path / "data" / f"iter-{self.iteration}.{name}.parquet"


def stage_key(iteration: int, stage: str) -> str:
    return f"iter-{iteration}.{stage}"


class Loop(ABC):
    """Base class of all loops. Subclasses set the class attributes and define `stage_<name>`."""

    name: ClassVar[str]
    description: ClassVar[str] = ""
    Config: ClassVar[type[LoopConfig]] = LoopConfig
    baseline_stages: ClassVar[tuple[str, ...]] = ("evaluate",)
    stages: ClassVar[tuple[str, ...]] = ()
    _executor: Executor | None = None  # built from config.executor on first use

    def __init__(self, config: LoopConfig, run: RunDir, console: Console | None = None) -> None:
        if not isinstance(config, self.Config):
            raise ConfigError(f"loop {self.name} needs a {self.Config.__name__}", "load it with Loop.Config")
        for s in set(self.stages) | set(self.baseline_stages):
            if not callable(getattr(self, f"stage_{s}", None)):
                raise TypeError(f"{type(self).__name__} lists stage {s!r} but defines no stage_{s}()")
        self.config = config
        self.run = run
        self.console = console or Console()
        self.meter = TruthMeter(run, self.name, seed=config.seed, console=self.console)
        # Test hook: called with the stage key before each stage that is about to run.
        self.before_stage: Callable[[str], None] | None = None

    # -- model versions ----------------------------------------------------------------------
    def checkpoint_dir(self, iteration: int) -> Path:
        return self.run.path / "checkpoints" / f"iter-{iteration}"

    def model_after(self, iteration: int) -> str:
        """Spec of the model produced by `iteration` (0: the starting model)."""
        if iteration <= 0:
            return self.config.model
        return f"hf:{self.checkpoint_dir(iteration).resolve()}"

    def policy_spec(self, iteration: int) -> str:
        """The model that generates data in `iteration`: the previous iteration's output."""
        return self.model_after(iteration - 1)

    def load(self, spec: str) -> Any:
        """Load a model by spec, freeing engines of other versions first (one model in memory)."""
        from selflab.models import clear_cache, load_model
        from selflab.models.spec import parse_spec

        key = parse_spec(spec).key
        if getattr(self, "_loaded_key", None) != key:
            clear_cache()
            self._loaded_key = key
        return load_model(spec)

    @property
    def executor(self) -> Executor:
        """The executor `config.executor` names, started on first use and closed by `run_loop`."""
        if self._executor is None:
            self._executor = make_executor(self.config.executor)
        return self._executor

    # -- records -----------------------------------------------------------------------------
    def stage_log(self, iteration: int, stage: str) -> RecordLog:
        return self.run.records(stage_key(iteration, stage))

    def read(self, iteration: int, stage: str, model: type[T]) -> list[T]:
        """Records of a completed stage. Reading an incomplete stage is a bug, so it raises."""
        if not self.run.is_complete(stage_key(iteration, stage)):
            raise RuntimeError(f"stage {stage_key(iteration, stage)} has not completed")
        return self.stage_log(iteration, stage).read(model)

    def seed_for(self, *parts: object) -> int:
        """A stable 31-bit seed derived from the run seed and any labels (iteration, stage, item)."""
        text = "|".join([str(self.config.seed), *map(str, parts)])
        return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big") & 0x7FFFFFFF

    # -- the toolkit every loop shares -------------------------------------------------------
    def stage_infos(self, iteration: int, keys: Sequence[str]) -> dict[str, Any]:
        """Selected summary numbers of an iteration's completed stages (for the meter's info line)."""
        info: dict[str, Any] = {}
        for key, st in self.run.completed_stages().items():
            if key.startswith(f"iter-{iteration}."):
                for k in keys:
                    if k in st.info and isinstance(st.info[k], (int, float, str)):
                        info[k] = st.info[k]
        return info

    def train_or_carry(
        self, ctx: StageContext, method: str, data: Path, cfg: Any, base: str | None = None
    ) -> None:
        """Train `method` on the parquet file `data` from `base` (default: this iteration's policy)
        into the iteration's checkpoint; with no data, copy the base forward so the chain of
        iterations continues (and say so in the stage info)."""
        from selflab.training import load_rows, resolve_model_path, train

        base = base or self.policy_spec(ctx.iteration)
        target = self.checkpoint_dir(ctx.iteration)
        if not data.exists():
            src = resolve_model_path(base)
            if target.exists():
                shutil.rmtree(target)
            shutil.copytree(src, target)
            ctx.info.update(skipped="no training data", steps=0)
            return
        tcfg = cfg.model_copy(update={"seed": self.seed_for("train", ctx.iteration)})
        result = train(method, base, load_rows(data), target, tcfg)  # type: ignore[arg-type]
        ctx.out.append(result)
        ctx.info.update(
            steps=result.steps,
            train_loss=round(result.train_loss, 4) if result.train_loss is not None else None,
            train_tokens_per_s=round(result.tokens / result.seconds, 1) if result.seconds else None,
        )

    def self_judge(self, model: Any, answers: Sequence[Any], samples: int, seed: int, **kw: Any) -> list[Any]:
        """The model's rubric judgments of its own answers, each kept (`loops.judging.judge_answers`)."""
        from selflab.loops.judging import judge_answers

        return judge_answers(model, answers, samples, seed, **kw)

    def meta_judge(
        self, model: Any, judged: Sequence[Any], max_new_tokens: int = 4, reasoning: bool = False
    ) -> tuple[list[Any], dict[str, int]]:
        """Meta-judge every pair of an answer's score-stripped judgments; returns the
        `MetaRecord`s and the counts of answers left out and why."""
        from selflab.loops.judging import meta_candidates, run_meta_judge

        cands, counts = meta_candidates(judged)
        return run_meta_judge(model, cands, max_new_tokens, reasoning), counts

    def run_evaluation(
        self, ctx: StageContext, evaluation: Any, spec: str, seed_label: str = "eval-judge"
    ) -> Any:
        """Run an `Evaluation` on model `spec`, log its records to the stage, return its result."""
        result = evaluation.run(self.load(spec), seed=self.seed_for(seed_label))
        ctx.out.extend(result.records)
        return result

    # -- running -----------------------------------------------------------------------------
    def plan(self) -> list[tuple[int, str]]:
        steps = [(0, s) for s in self.baseline_stages]
        for it in range(1, self.config.iterations + 1):
            steps += [(it, s) for s in self.stages]
        return steps

    def run_loop(self) -> list[IterationMetrics]:
        """Run every stage not yet complete, in order; then write the report."""
        start = time.perf_counter()
        done = self.run.completed_stages()
        progress.rule(f"[bold]{self.name}[/bold] → {self.run.path}")
        for iteration, stage in self.plan():
            key = stage_key(iteration, stage)
            if key in done:
                progress.print(f"[dim]skip {key} (completed earlier)[/dim]")
                continue
            if self.before_stage is not None:
                self.before_stage(key)
            log = self.stage_log(iteration, stage)
            if log.path.exists():  # partial output of an interrupted attempt
                log.path.unlink()
            ctx = StageContext(self, iteration, stage)
            progress.print(f"[bold cyan]▶ {key}[/bold cyan]")
            t0 = time.perf_counter()
            getattr(self, f"stage_{stage}")(ctx)
            ctx.info["seconds"] = round(time.perf_counter() - t0, 2)
            self.run.mark_complete(key, **ctx.info)
            progress.print(f"[green]✓ {key}[/green] " + " ".join(f"{k}={v}" for k, v in ctx.info.items()))
        if self._executor is not None:
            self._executor.close()
            self._executor = None
        self.run.metrics.append(RunFinished(wall_s=round(time.perf_counter() - start, 1)))
        if self.config.report:
            from selflab.report import write_report

            path = write_report(self.run)
            progress.print(f"report: {path}")
        return read_metrics(self.run)


# -- registry -----------------------------------------------------------------------------------

LOOP_CONFIG_FILE = "loop_config.json"
BROKEN_LOOP_MODULES: dict[str, str] = {}  # module -> import error, shown by `selflab loops`
_REGISTRY: dict[str, type[Loop]] = {}
_NOT_LOOP_MODULES = {
    "base",
    "benchmark",
    "cli",
    "evaluate",
    "evaluation",
    "game_data",
    "proposals",
    "refinement",
    "judging",
    "judge_labels",
    "judge_measures",
    "measures",
    "stats",
    "truth_meter",
    "verdict",
}


def register_loop(cls: type[Loop]) -> type[Loop]:
    """Class decorator: make a loop available to `selflab loop NAME`."""
    if not getattr(cls, "name", None):
        raise TypeError(f"{cls.__name__} needs a `name`")
    _REGISTRY[cls.name] = cls
    return cls


def _import_loop_modules() -> None:
    """Import every module of this package, so any loop module that registers itself is found."""
    import importlib
    import pkgutil

    import selflab.loops as pkg

    for info in pkgutil.iter_modules(pkg.__path__):
        if info.name in _NOT_LOOP_MODULES or info.name.startswith("_") or info.name in BROKEN_LOOP_MODULES:
            continue
        try:
            importlib.import_module(f"selflab.loops.{info.name}")
        except Exception as exc:  # noqa: BLE001 - one broken loop module must not hide the others
            BROKEN_LOOP_MODULES[info.name] = f"{type(exc).__name__}: {exc}"


def list_loops() -> dict[str, type[Loop]]:
    _import_loop_modules()
    return dict(sorted(_REGISTRY.items()))


def get_loop(name: str) -> type[Loop]:
    loops = list_loops()
    if name not in loops:
        broken = "".join(f"; module {m} failed to import ({e})" for m, e in BROKEN_LOOP_MODULES.items())
        raise SelflabError(
            f"no loop named {name!r}{broken}", f"choose one of: {', '.join(loops) or '(none)'}"
        )
    return loops[name]


def open_run(
    loop_cls: type[Loop],
    out: str | Path,
    config: LoopConfig | None,
    resume: bool,
    command: str | None = None,
    console: Console | None = None,
) -> Loop:
    """Create (or, with `resume`, reopen) the run directory and build the loop on it. On resume the
    saved config is used; a different one is refused, because mixing configs in one run makes its
    data meaningless."""
    out = Path(out)
    saved_path = out / LOOP_CONFIG_FILE
    if resume and saved_path.exists():
        saved = json.loads(saved_path.read_text(encoding="utf-8"))
        saved_loop = saved.pop("loop", loop_cls.name)
        if saved_loop != loop_cls.name:
            raise ConfigError(f"{out} holds a run of loop {saved_loop!r}", "use that loop or another --out")
        saved_cfg = loop_cls.Config.model_validate(saved)
        # where units run never changes the records, so the executor may differ on resume
        if config is not None and config.model_dump(
            mode="json", exclude={"executor"}
        ) != saved_cfg.model_dump(mode="json", exclude={"executor"}):
            raise ConfigError(
                f"--resume with a config that differs from the one saved in {saved_path}",
                "resume without --config (the saved one is used), or start a new --out directory",
            )
        config = saved_cfg if config is None else saved_cfg.model_copy(update={"executor": config.executor})
    cfg = config if config is not None else loop_cls.Config()
    full = {"loop": loop_cls.name, **cfg.model_dump(mode="json")}
    created = not out.exists()
    run = RunDir.create(out, config=full, seed=cfg.seed, resume=resume, command=command)
    # run.yaml scrubs secret-looking keys (it also hides e.g. max_new_tokens), so the exact config
    # needed to resume lives in its own file. Loop configs hold model specs, never API keys.
    if not saved_path.exists():
        tmp = saved_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(full, indent=2), encoding="utf-8")
        tmp.replace(saved_path)
    try:
        return loop_cls(cfg, run, console=console)
    except ConfigError:
        if created:  # nothing recorded yet: leave no half-made run that blocks the corrected command
            shutil.rmtree(out, ignore_errors=True)
        raise
