"""A tiny randomly initialised llama for fast unit tests (a few layers, real tokenizer).

Tests build it in a temp folder and load it through the ordinary `hf:` backend, so they exercise
the same code paths as the real model, only smaller.
"""

from __future__ import annotations

from pathlib import Path


def tiny_llama(
    folder: str | Path,
    num_layers: int = 2,
    hidden_size: int = 64,
    num_heads: int = 4,
    num_kv_heads: int = 2,
    seed: int = 0,
) -> Path:
    """Write a random tiny LlamaForCausalLM plus the embedded model's tokenizer and chat template
    into `folder`, and return it. Reuses the folder if it is already complete."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from selflab.models import embedded

    folder = Path(folder)
    if (folder / "model.safetensors").is_file() and (folder / "tokenizer.json").is_file():
        return folder
    tokenizer = AutoTokenizer.from_pretrained(embedded.prepare())
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_kv_heads,
        max_position_embeddings=2048,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id,
        tie_word_embeddings=True,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    # Larger logits than the default init so sampling is not uniform noise and greedy has clear winners.
    with torch.no_grad():
        model.lm_head.weight.mul_(
            8.0
        ) if not config.tie_word_embeddings else model.model.embed_tokens.weight.mul_(8.0)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return folder


def lively_tiny_llama(folder: str | Path) -> Path:
    """tiny_llama with its block weights x8, so greedy text wanders through varied tokens instead of
    repeating one (a masking or padding bug then changes the text). Reuses a complete folder."""
    import shutil

    import torch
    from transformers import AutoModelForCausalLM

    folder = Path(folder)
    out = folder / "lively"
    if (out / "model.safetensors").is_file() and (out / "tokenizer.json").is_file():
        return out
    base = tiny_llama(folder / "base")
    model = AutoModelForCausalLM.from_pretrained(base)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if ".layers." in name and param.dim() == 2:
                param.mul_(8.0)
    model.save_pretrained(out)
    for f in base.iterdir():
        if f.name.startswith(("tokenizer", "chat_template", "special_tokens")):
            shutil.copy(f, out / f.name)
    return out
