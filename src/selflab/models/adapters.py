"""Model folders that hold a LoRA adapter instead of full weights.

A LoRA training run saves its adapter (a few megabytes: `adapter_config.json`,
`adapter_model.safetensors`, the tokenizer) rather than a merged 540 MB copy of the model. Such a
folder loads anywhere a full folder does: its base (`base_model_name_or_path`, itself possibly an
adapter folder from an earlier iteration) is loaded first, then the adapter is merged into it in
memory, so inference runs at the speed of plain weights.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from selflab.errors import ModelSpecError

ADAPTER_CONFIG = "adapter_config.json"
_MAX_CHAIN = 64  # adapter on adapter on ...: a loop longer than this is a cycle, not a run


def is_adapter(folder: str | Path) -> bool:
    return (Path(folder) / ADAPTER_CONFIG).is_file()


def is_model_folder(folder: str | Path) -> bool:
    """Full weights (config.json) or a LoRA adapter (adapter_config.json)."""
    return (Path(folder) / "config.json").is_file() or is_adapter(folder)


def adapter_base(folder: str | Path) -> Path:
    """The folder an adapter was trained on, resolved relative to the adapter folder."""
    folder = Path(folder)
    try:
        base = json.loads((folder / ADAPTER_CONFIG).read_text(encoding="utf-8"))["base_model_name_or_path"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelSpecError(
            f"{folder / ADAPTER_CONFIG} is unreadable or names no base model ({exc})",
            "re-save the adapter with PEFT's save_pretrained",
        ) from exc
    path = (folder / Path(str(base)).expanduser()).resolve()
    if not is_model_folder(path):
        raise ModelSpecError(
            f"the adapter in {folder} was trained on {path}, which is not a model folder",
            "keep the base checkpoint next to its adapters, or load a merged checkpoint",
        )
    return path


def load_causal_lm(folder: str | Path, dtype: Any, **kwargs: Any) -> Any:
    """A transformers causal LM from a full folder, or from an adapter folder (base + merged adapter)."""
    from transformers import AutoModelForCausalLM

    folder = Path(folder)
    chain = [folder]
    while is_adapter(chain[-1]):
        if len(chain) > _MAX_CHAIN:
            raise ModelSpecError(
                f"adapter chain from {folder} is longer than {_MAX_CHAIN}", "check for a cycle"
            )
        chain.append(adapter_base(chain[-1]))
    model = AutoModelForCausalLM.from_pretrained(chain[-1], dtype=dtype, **kwargs)
    if len(chain) > 1:
        from peft import PeftModel

        for adapter in reversed(chain[:-1]):
            model = PeftModel.from_pretrained(model, adapter).merge_and_unload()
    return model
