"""What a training call is asked for (`TrainConfig`: LoRA by default, per-method learning rates,
memory switches, launcher) and what it reports back (`TrainResult`)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Method = Literal["sft", "dpo", "kto"]

CHECKPOINT_META = "selflab_checkpoint.json"

# Defaults that train a 135M model visibly in a few dozen steps; full fine-tuning needs a smaller rate.
_DEFAULT_LR: dict[tuple[str, bool], float] = {
    ("sft", True): 2e-4,
    ("sft", False): 2e-5,
    ("dpo", True): 5e-5,
    ("dpo", False): 5e-6,
    ("kto", True): 5e-5,
    ("kto", False): 5e-6,
}


class TrainConfig(BaseModel):
    """Everything a training call needs besides the data. LoRA is the default; `lora=False` is
    full fine-tuning."""

    model_config = ConfigDict(extra="forbid")

    lora: bool = True
    lora_r: int = Field(16, ge=1)
    lora_alpha: int = Field(32, ge=1)
    lora_dropout: float = Field(0.0, ge=0.0, lt=1.0)
    lora_target_modules: list[str] | str = "all-linear"
    lora_layers: int | None = Field(
        None,
        ge=1,
        description="LoRA on the top N transformer layers only: backward stops below them, so a step on "
        "long prompts (judge rubrics) costs about half; None: every layer",
    )
    learning_rate: float | None = Field(None, gt=0.0, description="None: a per-method, per-mode default")
    epochs: float = Field(1.0, gt=0.0)
    max_steps: int = Field(-1, description="> 0 overrides epochs")
    batch_size: int = Field(4, ge=1)
    grad_accum: int = Field(1, ge=1)
    max_length: int = Field(512, ge=16)
    warmup_steps: float = Field(0, ge=0, description=">= 1: steps; < 1: fraction of all steps")
    lr_scheduler: str = "linear"
    weight_decay: float = 0.0
    beta: float = Field(0.1, gt=0.0, description="DPO/KTO KL strength")
    dpo_loss: str = "sigmoid"
    dpo_sft_weight: float = Field(
        0.0,
        ge=0.0,
        description="DPO: weight of an NLL term on the chosen answer added to the preference loss "
        "(RPO, Pang et al. 2024; TRL's loss 'sft'): keeps the chosen likely, against length drift",
    )
    ld_alpha: float | None = Field(
        None,
        ge=0.0,
        le=1.0,
        description="DPO: LD-DPO's weight of the tokens beyond the pair's shared length (None: plain DPO)",
    )
    # "auto": on when one batch's saved activations would exceed `activation_budget_mb` (it costs one
    # more forward pass of the trained model per step, and saves most activation memory; see memory.py).
    # 2048 MB: the main job's SFT batches (8 x ~136 tokens, ~1.7 GB) train without it (16-24% faster, measured),
    # while DPO at the training benchmark's shape (8 rows x ~310 tokens, ~3.9 GB) still checkpoints.
    gradient_checkpointing: bool | Literal["auto"] = "auto"
    activation_budget_mb: int = Field(2048, ge=0)
    bf16: bool | None = Field(None, description="None: on only where the device supports bf16")
    seed: int = 0
    logging_steps: int = Field(5, ge=1)
    dataloader_workers: int = Field(0, ge=0)
    # How training runs: in this process, or under `accelerate launch` (see selflab.training.launch).
    launcher: Literal["local", "accelerate"] = "local"
    num_processes: int = Field(2, ge=1, description="processes for launcher: accelerate")
    accelerate_config: str | None = Field(None, description="accelerate YAML (DeepSpeed, FSDP), optional")

    # LoRA runs save the adapter (megabytes; `hf:` loads base + adapter merged in memory); "merged"
    # writes full weights in the base model's own dtype. Full fine-tuning always saves full weights.
    save: Literal["adapter", "merged"] = "adapter"

    def lr(self, method: Method) -> float:
        return self.learning_rate if self.learning_rate is not None else _DEFAULT_LR[(method, self.lora)]


def dpo_losses(cfg: TrainConfig) -> dict[str, Any]:
    """TRL's loss list: the preference loss, plus the NLL of the chosen answer when weighted (RPO)."""
    if cfg.dpo_sft_weight <= 0:
        return {"loss_type": [cfg.dpo_loss]}
    return {"loss_type": [cfg.dpo_loss, "sft"], "loss_weights": [1.0, cfg.dpo_sft_weight]}


class TrainResult(BaseModel):
    """What a training call produced: where the merged checkpoint is, and how training went."""

    method: Method
    checkpoint: str
    examples: int
    steps: int
    seconds: float
    train_loss: float | None = None
    losses: list[float] = Field(default_factory=list)
    tokens: int = 0
    trainable_params: int = 0
    total_params: int = 0
    lora: bool = True
    extra: dict[str, Any] = Field(default_factory=dict)
