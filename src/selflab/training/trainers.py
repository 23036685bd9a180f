"""Thin wrappers over TRL's SFT, DPO and KTO trainers, with CPU-safe defaults and PEFT LoRA.

Why wrap at all: TRL's defaults assume a GPU (bf16 on, gradient checkpointing on, logging to
trackers). Here bf16 is on only where the device supports it, gradient checkpointing only when
asked, nothing is reported or pushed, and every run ends in a safetensors checkpoint with
the tokenizer beside it: a LoRA adapter by default (megabytes; `hf:<checkpoint>` loads the base with
the adapter merged in memory), full weights for full fine-tuning or `save="merged"`.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

from selflab.errors import SelflabError
from selflab.models.adapters import adapter_base, is_adapter, is_model_folder, load_causal_lm
from selflab.training.config import CHECKPOINT_META, Method, TrainConfig, TrainResult, dpo_losses
from selflab.training.datasets import normalise_rows
from selflab.training.memory import cpu_fused_head, model_shape, wants_checkpointing


def has_weights(rows: list[dict[str, Any]]) -> bool:
    """True when some row carries a loss weight other than 1."""
    return any(float(r.get("weight", 1.0)) != 1.0 for r in rows)


def resolve_model_path(spec: str | Path) -> Path:
    """A model spec that names local weights -> their folder. Training needs the weights, so an
    `openai:` spec is refused with a clear message."""
    s = str(spec)
    # backend options (?device=cuda&dtype=bfloat16) name the same weights
    if s.startswith(("smollm2-135m?", "hf:", "vllm:")):
        s = s.split("?", 1)[0]
    if s.startswith("vllm:"):
        s = s[5:]
    if s == "smollm2-135m":
        from selflab.models import embedded

        return embedded.prepare()
    if s.startswith("hf:"):
        s = s[3:]
    if s.startswith(("openai:", "http://", "https://")):
        raise SelflabError(
            f"cannot train {spec!r}: its weights are behind an HTTP API", "train a local hf: model"
        )
    path = Path(s).expanduser()
    if not is_model_folder(path):
        raise SelflabError(
            f"model {spec!r} is not a local Hugging Face folder (no config.json or adapter_config.json in {path})",
            "use smollm2-135m or hf:/path/to/folder",
        )
    return path


def _device_supports_bf16() -> bool:
    import torch

    return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())


def _trl_kwargs(
    method: Method, cfg: TrainConfig, work_dir: Path, n_examples: int, checkpointing: bool
) -> dict[str, Any]:
    import torch

    bf16 = _device_supports_bf16() if cfg.bf16 is None else cfg.bf16
    if bf16 and not torch.cuda.is_available():
        raise SelflabError("bf16=True was asked for on a CPU-only machine", "leave bf16 unset (auto) on CPU")
    # Tiny datasets: never let the batch exceed the data (KTO needs >= 2 per batch for its KL term).
    batch = max(1, min(cfg.batch_size, n_examples))
    if method == "kto":
        batch = max(2, batch)
    return dict(
        output_dir=str(work_dir),
        learning_rate=cfg.lr(method),
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps,
        per_device_train_batch_size=batch,
        gradient_accumulation_steps=cfg.grad_accum,
        warmup_steps=cfg.warmup_steps,
        lr_scheduler_type=cfg.lr_scheduler,
        weight_decay=cfg.weight_decay,
        max_length=cfg.max_length,
        gradient_checkpointing=checkpointing,
        bf16=bf16,
        fp16=False,
        use_cpu=not torch.cuda.is_available(),
        seed=cfg.seed,
        data_seed=cfg.seed,
        logging_steps=cfg.logging_steps,
        save_strategy="no",
        report_to=[],
        push_to_hub=False,
        dataloader_num_workers=cfg.dataloader_workers,
        disable_tqdm=True,
        dataset_num_proc=None,
    )


def _peft_config(cfg: TrainConfig, model: Any) -> Any:
    """PEFT's LoRA config; with `lora_layers`, adapters on the model's top layers only (PEFT needs
    module names then, so "all-linear" becomes the linear layers' names)."""
    import torch
    from peft import LoraConfig

    targets: list[str] | str = cfg.lora_target_modules
    top: dict[str, Any] = {}
    layers = model_shape(model.config)[2]
    if cfg.lora_layers is not None and layers:
        top = {"layers_to_transform": list(range(max(0, layers - cfg.lora_layers), layers))}
        if targets == "all-linear":
            targets = sorted(
                {
                    name.rsplit(".", 1)[-1]
                    for name, m in model.named_modules()
                    if isinstance(m, torch.nn.Linear) and ".layers." in name
                }
            )
    return LoraConfig(
        r=cfg.lora_r,
        lora_alpha=cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout,
        target_modules=targets,
        task_type="CAUSAL_LM",
        **top,
    )


def _count_tokens(trainer: Any) -> int:
    """Non-padding tokens in one pass over the processed training set (for throughput)."""
    ds = trainer.train_dataset
    total = 0
    for col in ("input_ids", "prompt_ids", "completion_ids", "chosen_ids", "rejected_ids"):
        if col in ds.column_names:
            total += sum(len(x) for x in ds[col])
    if "chosen_ids" in ds.column_names and "prompt_ids" in ds.column_names:
        total += sum(len(x) for x in ds["prompt_ids"])  # the prompt runs once with each answer
    return total


def train(
    method: Method,
    model: str | Path,
    rows: list[dict[str, Any]],
    out_dir: str | Path,
    config: TrainConfig | None = None,
    callbacks: list[Any] | None = None,
) -> TrainResult:
    """Train `model` (a spec or folder) on conversational `rows` with TRL and write a merged
    safetensors checkpoint to `out_dir`. Written atomically: `out_dir` appears only once complete."""
    import torch
    from datasets import Dataset
    from transformers import AutoTokenizer

    cfg = config or TrainConfig()
    from selflab.training.launch import in_launched_process, launch_train

    if cfg.launcher == "accelerate" and not in_launched_process():
        return launch_train(method, model, normalise_rows(method, rows), out_dir, cfg)
    rows = normalise_rows(method, rows)
    out_dir = Path(out_dir)
    src = resolve_model_path(model)
    rank = int(os.environ.get("RANK", "0")) if in_launched_process() else 0
    work = out_dir.with_name(out_dir.name + (f".work-rank{rank}" if rank else ".work"))
    if work.exists():
        shutil.rmtree(work)  # remnant of a crashed call
    work.mkdir(parents=True)

    tokenizer = AutoTokenizer.from_pretrained(src)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    torch_model = load_causal_lm(src, dtype=torch.float32)  # an adapter folder: base + adapter merged
    dataset = Dataset.from_list(rows)
    checkpointing = wants_checkpointing(
        cfg.gradient_checkpointing,
        rows,
        tokenizer,
        torch_model.config,
        batch_size=max(cfg.batch_size, 2) if method == "kto" else cfg.batch_size,
        max_length=cfg.max_length,
        rows_per_example=2 if method == "dpo" else 1,  # DPO runs chosen and rejected side by side
        budget_mb=cfg.activation_budget_mb,
    )
    kwargs = _trl_kwargs(method, cfg, work / "trainer", len(rows), checkpointing)
    peft_config = _peft_config(cfg, torch_model) if cfg.lora else None

    if method == "sft" and has_weights(rows):
        from trl import SFTConfig

        from selflab.training.weighted import weighted_sft_trainer

        trainer = weighted_sft_trainer(
            torch_model, SFTConfig(**kwargs), rows, tokenizer, peft_config=peft_config, callbacks=callbacks
        )
    elif method == "sft":
        from trl import SFTConfig, SFTTrainer

        trainer = SFTTrainer(
            model=torch_model,
            args=SFTConfig(**kwargs),
            train_dataset=dataset,
            processing_class=tokenizer,
            peft_config=peft_config,
            callbacks=callbacks,
        )
    elif method == "dpo":
        from trl import DPOConfig, DPOTrainer

        trainer = DPOTrainer(
            model=torch_model,
            ref_model=None,  # LoRA: the adapter-off base is the reference; full FT: TRL copies the model
            args=DPOConfig(beta=cfg.beta, ld_alpha=cfg.ld_alpha, **dpo_losses(cfg), **kwargs),
            train_dataset=dataset,
            processing_class=tokenizer,
            peft_config=peft_config,
            callbacks=callbacks,
        )
    elif method == "kto":
        from trl import KTOConfig, KTOTrainer

        trainer = KTOTrainer(
            model=torch_model,
            ref_model=None,
            args=KTOConfig(beta=cfg.beta, **kwargs),
            train_dataset=dataset,
            processing_class=tokenizer,
            peft_config=peft_config,
            callbacks=callbacks,
        )
    else:  # pragma: no cover - Literal guards this
        raise SelflabError(f"unknown training method {method!r}", "use sft, dpo or kto")
    _quiet_log_printer(trainer)

    trainable = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in trainer.model.parameters())
    try:
        tokens = _count_tokens(trainer)
    except Exception:  # noqa: BLE001 - throughput accounting must never stop training
        tokens = 0
    start = time.perf_counter()
    with cpu_fused_head(trainer.args.device.type == "cpu"):
        output = trainer.train()
    seconds = time.perf_counter() - start
    losses = [float(h["loss"]) for h in trainer.state.log_history if "loss" in h]

    trained = trainer.model
    merged = cfg.lora and cfg.save == "merged"
    if merged:
        trained = trained.merge_and_unload().to(_own_dtype(src, torch))
    elif cfg.lora:
        # the adapter names its base by absolute path, so the run folder loads from anywhere
        for peft_cfg in trained.peft_config.values():
            peft_cfg.base_model_name_or_path = str(src.resolve())
    if trainer.is_world_process_zero():  # under `accelerate launch`, one process writes
        save_checkpoint(
            trained,
            tokenizer,
            out_dir,
            meta={
                "method": method,
                "base": str(src),
                "lora_merged": merged,
                "adapter": cfg.lora and not merged,
                "config": cfg.model_dump(),
            },
        )
    shutil.rmtree(work, ignore_errors=True)
    trainer.accelerator.wait_for_everyone()
    return TrainResult(
        method=method,
        checkpoint=str(out_dir),
        examples=len(rows),
        steps=int(trainer.state.global_step),
        seconds=seconds,
        train_loss=float(output.training_loss) if output.training_loss is not None else None,
        losses=losses,
        # tokens actually processed: examples seen (steps x batch x accumulation, at most the
        # epochs asked for) times the mean tokens per processed example
        tokens=int(
            tokens
            / max(1, len(trainer.train_dataset))
            * int(trainer.state.global_step)
            * trainer.args.per_device_train_batch_size
            * trainer.args.gradient_accumulation_steps
        ),
        trainable_params=trainable,
        total_params=total,
        lora=cfg.lora,
        extra={"gradient_checkpointing": checkpointing},
    )


def _own_dtype(folder: Path, torch: Any) -> Any:
    """The dtype the base model's config.json declares (float32 when it declares none)."""
    while is_adapter(folder):
        folder = adapter_base(folder)
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return torch.float32
    name = config.get("dtype") or config.get("torch_dtype") or "float32"
    return getattr(torch, str(name), torch.float32)


def _quiet_log_printer(trainer: Any) -> None:
    """The Trainer prints every log dict to stdout; when selflab runs quiet (transformers at
    ERROR, i.e. no `--verbose`) drop that printer: the losses stay in `TrainResult.losses`."""
    from transformers.trainer_callback import PrinterCallback
    from transformers.utils import logging as hf_logging

    if hf_logging.get_verbosity() >= hf_logging.ERROR:
        trainer.remove_callback(PrinterCallback)


def save_checkpoint(
    model: Any, tokenizer: Any, out_dir: str | Path, meta: dict[str, Any] | None = None
) -> Path:
    """Save weights (full, or a PEFT model's adapter) as safetensors plus tokenizer (and chat template) into `out_dir`, via a
    temporary folder renamed at the end, so a crash never leaves a checkpoint that looks complete."""
    out_dir = Path(out_dir)
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    (tmp / CHECKPOINT_META).write_text(json.dumps(meta or {}, indent=2, default=str), encoding="utf-8")
    if out_dir.exists():
        shutil.rmtree(out_dir)
    tmp.rename(out_dir)
    return out_dir


def is_checkpoint(path: str | Path) -> bool:
    """True when `path` is a complete checkpoint written by `save_checkpoint`."""
    p = Path(path)
    return (p / CHECKPOINT_META).is_file() and is_model_folder(p)
