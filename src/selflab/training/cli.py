"""`selflab train sft|dpo|kto --data FILE --model SPEC --out DIR`: one TRL training run on a file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from selflab.training.datasets import load_rows
from selflab.training.trainers import Method, TrainConfig, train

console = Console(stderr=True)


def _make(method: Method):  # noqa: ANN202 - typer command factory
    def command(
        data: Annotated[Path, typer.Option("--data", help="Dataset: .jsonl, .json or .parquet.")],
        out: Annotated[Path, typer.Option("--out", help="Checkpoint folder to write (merged safetensors).")],
        model: Annotated[str, typer.Option("--model", "-m", help="Model spec to train.")] = "smollm2-135m",
        config: Annotated[Path | None, typer.Option("--config", help="YAML with TrainConfig fields.")] = None,
        full: Annotated[bool, typer.Option("--full", help="Full fine-tuning instead of LoRA.")] = False,
        lr: Annotated[float | None, typer.Option("--lr", help="Learning rate.")] = None,
        epochs: Annotated[float | None, typer.Option("--epochs")] = None,
        max_steps: Annotated[int | None, typer.Option("--max-steps")] = None,
        batch_size: Annotated[int | None, typer.Option("--batch-size")] = None,
        beta: Annotated[float | None, typer.Option("--beta", help="DPO/KTO beta.")] = None,
        seed: Annotated[int | None, typer.Option("--seed")] = None,
    ) -> None:
        from selflab.config import load_config

        overrides = {
            "lora": False if full else None,
            "learning_rate": lr,
            "epochs": epochs,
            "max_steps": max_steps,
            "batch_size": batch_size,
            "beta": beta,
            "seed": seed,
        }
        cfg = load_config(TrainConfig, config, overrides)
        rows = load_rows(data)
        console.print(
            f"{method}: {len(rows)} examples, {'LoRA' if cfg.lora else 'full fine-tuning'}, lr={cfg.lr(method)}"
        )
        result = train(method, model, rows, out, cfg)
        console.print(
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
