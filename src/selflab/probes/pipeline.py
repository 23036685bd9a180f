"""From a model spec and dataset names to split activations ready for probes.

Shared by the sweep, the generalization matrix, dynamics and probe-guided generation, so they all
read the same statements, the same entity splits and the same cached activations.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from selflab.errors import SelflabError
from selflab.models.adapters import load_causal_lm
from selflab.probes import datasets as ds
from selflab.probes.activations import ActivationCache, Activations, extract
from selflab.probes.datasets import DEFAULT_FRACTIONS


@dataclass
class Target:
    """The model being probed: a transformers causal LM and its tokenizer, plus the selflab
    `LanguageModel` (for sampling answers) when the backend provides one."""

    name: str
    model: Any
    tokenizer: Any
    lm: Any = None
    cache_key: str = ""  # names the weights in the activation cache (a path for hf: specs)

    def __post_init__(self) -> None:
        self.cache_key = self.cache_key or self.name

    @property
    def num_layers(self) -> int:
        return int(self.model.config.num_hidden_layers)

    def render(self, messages: list[Any]) -> str:
        """Chat-template text of `messages` with an open assistant turn."""
        if self.lm is not None and hasattr(self.lm, "render"):
            return self.lm.render(messages)
        msgs = [{"role": m.role, "content": m.content} for m in messages]
        return self.tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)


def load_target(spec: str) -> Target:
    """Load a local model for probing. Uses `selflab.models.load_model` (shared engine) and its
    `.model` / `.tokenizer`; probes need weights in this process, so remote specs are refused."""
    if spec.startswith("openai:"):
        raise SelflabError(
            f"probes need a local model's hidden states, and {spec!r} is a remote API model",
            "use 'smollm2-135m' or 'hf:/path/to/model'",
        )
    try:
        from selflab.models import load_model

        lm = load_model(spec)
    except ImportError:  # the hf backend is not installed in this checkout: load directly
        return _load_direct(spec)
    model, tokenizer = getattr(lm, "model", None), getattr(lm, "tokenizer", None)
    if model is None or tokenizer is None:
        raise SelflabError(f"model {spec!r} does not expose local weights", "use an hf: or embedded model")
    return Target(
        name=getattr(lm, "name", spec), model=model, tokenizer=tokenizer, lm=lm, cache_key=_key(spec)
    )


def _key(spec: str) -> str:
    """Two different folders both called 'iter-1' must not share cached activations."""
    if spec.startswith("hf:"):
        path = Path(spec[3:]).expanduser().resolve()
        return f"{path.name}-{hashlib.sha256(str(path).encode()).hexdigest()[:8]}"
    return spec


def _load_direct(spec: str) -> Target:
    import torch
    from transformers import AutoTokenizer

    from selflab.models import embedded

    if spec == embedded.EMBEDDED_NAME:
        path, name = embedded.prepare(), embedded.EMBEDDED_NAME
    elif spec.startswith("hf:"):
        path, name = Path(spec[3:]), spec
    else:
        raise SelflabError(f"cannot load model spec {spec!r} for probing", "use 'smollm2-135m' or 'hf:/path'")
    if not Path(path).is_dir():
        raise SelflabError(f"model folder {path} does not exist", "check the hf: path")
    tok = AutoTokenizer.from_pretrained(path)
    model = load_causal_lm(path, dtype=torch.float32)  # full weights, or base + merged LoRA adapter
    model.eval()
    return Target(name=name, model=model, tokenizer=tok, cache_key=_key(spec))


@dataclass
class Split:
    """One split of one dataset at one position: X is (n, num_layers + 1, hidden)."""

    X: np.ndarray
    y: np.ndarray
    entities: list[str]
    statements: list[ds.Statement]

    def layer(self, index: int, layers: list[int]) -> np.ndarray:
        return self.X[:, layers.index(index), :]


@dataclass
class DatasetActs:
    name: str
    position: str
    layers: list[int]
    train: Split
    val: Split
    test: Split

    def split(self, name: str) -> Split:
        return {"train": self.train, "val": self.val, "test": self.test}[name]


def build_datasets(names: Sequence[str], n: int, seed: int) -> dict[str, ds.ProbeDataset]:
    out: dict[str, ds.ProbeDataset] = {}
    for name in names:
        out[name] = ds.build(name, n=n, seed=seed)
    return out


def _split(acts: Activations, data: ds.ProbeDataset, idx: list[int]) -> Split:
    st = [data.statements[i] for i in idx]
    return Split(
        X=acts.data[idx].astype(np.float32),
        y=np.array([s.label for s in st], dtype=int),
        entities=[s.entity for s in st],
        statements=st,
    )


def activations_for(
    target: Target,
    data: ds.ProbeDataset,
    positions: Sequence[str],
    cache_dir: Path | None,
    layers: Sequence[int] | None = None,
    batch_size: int = 16,
) -> dict[str, Activations]:
    inputs = data.inputs()
    if cache_dir is None:
        return extract(
            target.model, target.tokenizer, inputs, positions=positions, layers=layers, batch_size=batch_size
        )
    cache = ActivationCache(cache_dir)
    return cache.get_or_extract(
        target.cache_key,  # not the display name: two folders called 'iter-1' are different weights
        data.name,
        target.model,
        target.tokenizer,
        inputs,
        positions,
        layers=layers,
        batch_size=batch_size,
    )


def prepare(
    target: Target,
    datasets: dict[str, ds.ProbeDataset],
    position: str,
    seed: int,
    cache_dir: Path | None,
    batch_size: int = 16,
    fractions: tuple[float, float, float] = DEFAULT_FRACTIONS,
) -> dict[str, DatasetActs]:
    """Activations of every dataset at one pooled position, split by entity."""
    if position == "all":
        raise SelflabError("sweeps use a pooled position", "use last, answer_last or answer_mean")
    out: dict[str, DatasetActs] = {}
    for name, data in datasets.items():
        acts = activations_for(target, data, [position], cache_dir, batch_size=batch_size)[position]
        idx = ds.split_indices(data.statements, seed=seed, fractions=fractions)
        out[name] = DatasetActs(
            name=name,
            position=position,
            layers=acts.layers,
            train=_split(acts, data, idx["train"]),
            val=_split(acts, data, idx["val"]),
            test=_split(acts, data, idx["test"]),
        )
    return out
