"""Training: TRL SFT/DPO/KTO wrappers with LoRA or full fine-tuning, and the dataset builders.

```python
from selflab.training import train, TrainConfig, sft_rows, SFTExample
result = train("sft", "smollm2-135m", sft_rows(examples), "runs/x/checkpoints/iter-1", TrainConfig())
# result.checkpoint loads everywhere as the model spec f"hf:{result.checkpoint}"
```
"""

from selflab.training.datasets import (
    KTOExample,
    PairBuildResult,
    PairCounts,
    PreferencePair,
    ScoredResponse,
    SFTExample,
    best_vs_worst_pairs,
    build_pairs,
    dpo_rows,
    kto_from_pairs,
    kto_rows,
    load_rows,
    mean_score,
    normalise_rows,
    save_parquet,
    sft_rows,
)
from selflab.training.trainers import (
    TrainConfig,
    TrainResult,
    is_checkpoint,
    resolve_model_path,
    save_checkpoint,
    train,
)

__all__ = [
    "KTOExample",
    "PairBuildResult",
    "PairCounts",
    "PreferencePair",
    "SFTExample",
    "ScoredResponse",
    "TrainConfig",
    "TrainResult",
    "best_vs_worst_pairs",
    "build_pairs",
    "dpo_rows",
    "is_checkpoint",
    "kto_from_pairs",
    "kto_rows",
    "load_rows",
    "mean_score",
    "normalise_rows",
    "resolve_model_path",
    "save_checkpoint",
    "save_parquet",
    "sft_rows",
    "train",
]
