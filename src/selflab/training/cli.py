"""`selflab train sft|dpo|kto --data FILE --model SPEC [--out DIR]`: one TRL training run on a file.

The flags are generated from `TrainCommandConfig` (TrainConfig plus the data file and the model), so
every training setting is a flag, a `--set key=value` and a YAML key under the same name."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from pydantic import Field

from selflab.cli_options import config_options, default_out
from selflab.console import log
from selflab.errors import ConfigError
from selflab.training.datasets import load_rows
from selflab.training.trainers import Method, TrainConfig, train


class TrainCommandConfig(TrainConfig):
    """What `selflab train METHOD` needs: the training settings, the data file and the model."""

    data: Path = Field(description="Dataset: .jsonl, .json or .parquet (conversational rows).")
    model: str = Field("smollm2-135m", description="Model spec to train.")


# Help for TrainConfig fields that carry no description (TrainConfig lives in training/trainers.py).
HELPS = {
    "lora": "Train LoRA adapters (--no-lora or --full: full fine-tuning).",
    "lora_r": "LoRA rank.",
    "lora_alpha": "LoRA alpha (scale = alpha / r).",
    "lora_dropout": "LoRA dropout.",
    "epochs": "Passes over the data.",
    "batch_size": "Examples per device step.",
    "grad_accum": "Gradient accumulation steps.",
    "max_length": "Tokens per example (longer ones are truncated).",
    "lr_scheduler": "Learning-rate schedule (transformers' names: linear, cosine, constant, ...).",
    "weight_decay": "AdamW weight decay.",
    "dpo_loss": "DPO loss type (TRL's names: sigmoid, ipo, hinge, ...).",
    "gradient_checkpointing": "Recompute activations to save memory.",
    "seed": "Seed of every random choice (same seed, same result).",
    "logging_steps": "Steps between loss records.",
    "launcher": "Run in this process (local) or under accelerate launch (accelerate).",
    "save": "LoRA runs: save the adapter, or merged full weights.",
}


def _make(method: Method):  # noqa: ANN202 - typer command factory
    @config_options(
        TrainCommandConfig,
        skip=("lora_target_modules",),
        flags={"learning_rate": ["--learning-rate", "--lr"]},
        helps=HELPS,
    )
    def command(
        cfg: TrainCommandConfig,
        out: Path | None,
        resume: bool,
        full: Annotated[bool, typer.Option("--full", help="Full fine-tuning instead of LoRA.")] = False,
    ) -> None:
        if resume:
            raise ConfigError("selflab train does not resume", "start it again with a fresh --out")
        settings = TrainConfig.model_validate(cfg.model_dump(exclude={"data", "model"}))
        if full:
            settings = settings.model_copy(update={"lora": False})
        out = out or default_out("train", method)
        rows = load_rows(cfg.data)
        log.print(
            f"{method}: {len(rows)} examples, {'LoRA' if settings.lora else 'full fine-tuning'}, "
            f"lr={settings.lr(method)}"
        )
        result = train(method, cfg.model, rows, out, settings)
        log.print(
            f"done: {result.steps} steps in {result.seconds:.1f}s, loss {result.train_loss}, "
            f"{result.tokens / max(result.seconds, 1e-9):.0f} tok/s"
        )
        typer.echo(f"checkpoint: {result.checkpoint}  (use as model spec hf:{result.checkpoint})")

    command.__doc__ = f"{method.upper()} training with TRL on a conversational dataset file."
    return command


def register(app: typer.Typer) -> None:
    """Add `selflab train sft|dpo|kto`."""
    train_app = typer.Typer(
        help="Train a model with TRL (SFT, DPO, KTO; LoRA or full).", no_args_is_help=True
    )
    for method in ("sft", "dpo", "kto"):
        train_app.command(method)(_make(method))  # type: ignore[arg-type]
    app.add_typer(train_app, name="train")
