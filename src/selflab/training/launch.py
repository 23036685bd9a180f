"""Training through `accelerate launch`: the same `train()` call, run in N processes (DDP, or
DeepSpeed / FSDP with an accelerate config file), selected from the loop config.

    train:                       # any loop's TrainConfig
      launcher: accelerate
      num_processes: 2           # processes on this machine (one per GPU; on CPU, gloo DDP)
      accelerate_config: configs/accelerate/deepspeed_zero2.yaml   # optional

Why a subprocess: accelerate and torch.distributed own process start-up (ranks, rendezvous,
DeepSpeed engines), and TRL's trainers are built to run under them. The parent writes a job file
(the rows, the model, the config), runs `accelerate launch -m selflab.training.launch JOB`, and
reads back the `TrainResult` rank 0 wrote. Only rank 0 writes the checkpoint.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from selflab.errors import SelflabError

LAUNCHED_ENV = "SELFLAB_LAUNCHED"


def in_launched_process() -> bool:
    """True inside a process started by `launch_train` (so `train` runs there instead of relaunching)."""
    return os.environ.get(LAUNCHED_ENV) == "1"


def accelerate_command(cfg: Any, job: Path) -> list[str]:
    """The `accelerate launch` command line for a TrainConfig. Without a config file, N > 1 local
    processes use accelerate's multi-process launcher (torchrun): NCCL on GPUs, gloo on CPU."""
    cmd = [sys.executable, "-m", "accelerate.commands.launch"]
    if cfg.accelerate_config:
        path = Path(cfg.accelerate_config).expanduser()
        if not path.is_file():
            raise SelflabError(
                f"accelerate config {path} does not exist",
                "point train.accelerate_config at a file such as configs/accelerate/fsdp.yaml",
            )
        cmd += ["--config_file", str(path), "--num_processes", str(cfg.num_processes)]
    else:
        if cfg.num_processes > 1:
            cmd += ["--multi_gpu"]
        cmd += ["--num_processes", str(cfg.num_processes), "--num_machines", "1", "--mixed_precision", "no"]
        cmd += ["--dynamo_backend", "no", "--main_process_port", str(_free_port())]
    return [*cmd, "-m", "selflab.training.launch", str(job)]


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def launch_train(
    method: str, model: str | Path, rows: list[dict[str, Any]], out_dir: str | Path, cfg: Any
) -> Any:
    """Run `train(method, model, rows, out_dir, cfg)` under `accelerate launch` and return its result."""
    from selflab.training.trainers import TrainResult

    if shutil.which("accelerate") is None and not _has_module("accelerate"):
        raise SelflabError("launcher 'accelerate' needs the accelerate package", "pip install accelerate")
    out_dir = Path(out_dir)
    job_dir = out_dir.with_name(out_dir.name + ".launch")
    if job_dir.exists():
        shutil.rmtree(job_dir)
    job_dir.mkdir(parents=True)
    child_cfg = cfg.model_copy(update={"launcher": "local"})
    (job_dir / "rows.json").write_text(json.dumps(rows, ensure_ascii=False, default=str), encoding="utf-8")
    job = job_dir / "job.json"
    job.write_text(json.dumps({"method": method, "model": str(model), "out_dir": str(out_dir),
                               "config": child_cfg.model_dump(mode="json")}), encoding="utf-8")  # fmt: skip
    env = {**os.environ, LAUNCHED_ENV: "1", "TOKENIZERS_PARALLELISM": "false"}
    log_path = job_dir / "launch.log"
    with open(log_path, "w", encoding="utf-8") as log:
        proc = subprocess.run(
            accelerate_command(cfg, job), env=env, stdout=log, stderr=subprocess.STDOUT, check=False
        )
    result_path = job_dir / "result.json"
    if proc.returncode != 0 or not result_path.is_file():
        tail = log_path.read_text(encoding="utf-8", errors="replace")[-3000:]
        raise SelflabError(
            f"`accelerate launch` training failed (exit code {proc.returncode}); log: {log_path}\n{tail}",
            "read the log; check num_processes against the GPUs present and the accelerate config",
        )
    result = TrainResult.model_validate_json(result_path.read_text(encoding="utf-8"))
    result.extra.update(launcher="accelerate", num_processes=cfg.num_processes)
    shutil.rmtree(job_dir, ignore_errors=True)
    return result


def _has_module(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


def main(argv: list[str] | None = None) -> None:
    """Entry point of each launched process: run the job; rank 0 writes result.json beside it."""
    from selflab.training.trainers import TrainConfig, train

    job_path = Path((argv or sys.argv[1:])[0])
    job = json.loads(job_path.read_text(encoding="utf-8"))
    rows = json.loads((job_path.parent / "rows.json").read_text(encoding="utf-8"))
    cfg = TrainConfig.model_validate(job["config"])
    result = train(job["method"], job["model"], rows, job["out_dir"], cfg)
    if int(os.environ.get("RANK", "0")) == 0:
        result.extra["world_size"] = int(os.environ.get("WORLD_SIZE", "1"))
        tmp = job_path.parent / "result.json.tmp"
        tmp.write_text(result.model_dump_json(), encoding="utf-8")
        tmp.replace(job_path.parent / "result.json")
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
