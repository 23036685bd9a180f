"""Hidden states of every layer at chosen token positions, batched, padding-correct and cached.

Why our own forward pass rather than the backend's `hidden_states`: probing needs control over
padding side, position ids and which tokens are kept, and a sweep over 30 layers must not keep
every token of every layer in memory.

Layer convention: index 0 is the embeddings output, index i (1..L) is the raw output of block i
(the residual stream). transformers returns the *final-norm* output as its last hidden state; we
replace it with the raw output of the last block (captured by a hook) so that every index means
the same thing. Position ids are computed from the attention mask, so left padding gives the same
states as an unpadded pass.

Positions:
- `last`: last real token of the text.
- `answer_last`: last token overlapping the answer span (character offsets).
- `answer_mean`: mean over the tokens overlapping the answer span.
- `all`: every token from the one *before* the answer span (the "pre-answer" state) to the end
  of the text, for token dynamics; ragged, so stored concatenated with per-text lengths.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from selflab.errors import SelflabError

Position = Literal["last", "answer_last", "answer_mean", "all"]
POSITIONS: tuple[str, ...] = ("last", "answer_last", "answer_mean", "all")
CACHE_VERSION = 2  # 2: no double BOS on chat texts, raw last block for every layout


@dataclass
class ProbeInput:
    """One text to read, with the character span of its answer (None: the whole text)."""

    text: str
    span: tuple[int, int] | None = None


@dataclass
class Activations:
    """Extracted states. Pooled positions: `data` is (n, num_layers + 1, hidden). Position `all`:
    `data` is (sum of lengths, num_layers + 1, hidden) and `lengths[k]` tokens belong to text k
    (the first of them is the pre-answer token). `layers` lists which layer indices were kept."""

    position: str
    data: np.ndarray
    layers: list[int]
    lengths: np.ndarray | None = None

    def layer(self, index: int) -> np.ndarray:
        """States of one layer (by model layer index, not by column)."""
        try:
            col = self.layers.index(index)
        except ValueError as err:
            raise SelflabError(
                f"layer {index} was not extracted (have {self.layers[:3]}..{self.layers[-1]})",
                "extract with layers=None (all layers) or include this layer",
            ) from err
        return self.data[:, col, :].astype(np.float32)

    def sequences(self) -> list[np.ndarray]:
        """For position `all`: one (tokens, layers, hidden) array per text."""
        if self.lengths is None:
            raise SelflabError("sequences() needs activations extracted at position 'all'", "")
        bounds = np.concatenate([[0], np.cumsum(self.lengths)])
        return [self.data[bounds[i] : bounds[i + 1]] for i in range(len(self.lengths))]

    def __len__(self) -> int:
        return len(self.lengths) if self.lengths is not None else self.data.shape[0]


def _span_token_indices(offsets: Sequence[tuple[int, int]], span: tuple[int, int] | None) -> list[int]:
    """Indices of tokens whose character range overlaps the span (tokens of zero width are skipped)."""
    n = len(offsets)
    if span is None:
        return list(range(n))
    start, end = span
    idx = [i for i, (a, b) in enumerate(offsets) if b > a and a < end and b > start]
    if not idx:
        # The span fell between tokens (e.g. an empty answer): use the last token before its end.
        before = [i for i, (a, b) in enumerate(offsets) if a < max(end, 1)]
        idx = [before[-1] if before else n - 1]
    return idx


def _check_inputs(inputs: Sequence[ProbeInput]) -> None:
    if not inputs:
        raise SelflabError("no texts to extract activations from", "pass at least one ProbeInput")
    for k, item in enumerate(inputs):
        if not item.text:
            raise SelflabError(f"input {k} is an empty text", "drop empty texts before extracting")
        if item.span is not None:
            a, b = item.span
            if not (0 <= a <= b <= len(item.text)):
                raise SelflabError(
                    f"input {k}: answer span {item.span} lies outside its text of length {len(item.text)}",
                    "give spans as character offsets into the text",
                )


# Where transformers keeps the list of decoder blocks: Llama/Qwen/Mistral/Gemma, multimodal
# wrappers, GPT-2/GPT-J/Falcon, GPT-NeoX, OPT.
_BLOCK_PATHS = (
    "model.layers",
    "model.language_model.layers",
    "transformer.h",
    "gpt_neox.layers",
    "model.decoder.layers",
)


def _last_block(model: Any, num_layers: int) -> Any:
    """The last decoder block, whose raw output replaces the final-norm output of transformers.
    Without it the last index would silently mean 'after the final norm' for some architectures
    and 'raw residual stream' for others, so an unknown layout is an error, not a fallback."""
    for path in _BLOCK_PATHS:
        obj = model
        for part in path.split("."):
            obj = getattr(obj, part, None)
            if obj is None:
                break
        if obj is not None and hasattr(obj, "__len__") and len(obj) == num_layers:
            return obj[-1]
    raise SelflabError(
        f"cannot find the {num_layers} decoder blocks of {type(model).__name__}",
        f"probing supports models whose blocks live at one of {', '.join(_BLOCK_PATHS)}",
    )


def extract(
    model: Any,
    tokenizer: Any,
    inputs: Sequence[ProbeInput],
    positions: Sequence[str] = ("last",),
    layers: Sequence[int] | None = None,
    batch_size: int = 16,
    padding_side: Literal["left", "right"] = "right",
    dtype: Any = np.float32,
    all_dtype: Any = np.float16,
    max_length: int = 512,
) -> dict[str, Activations]:
    """Run `model` (a transformers causal LM) over the texts in batches and pool hidden states.

    Texts are sorted by length before batching (less padding, same results), then restored to
    their input order. Returns one `Activations` per requested position; pooled positions are
    stored as `dtype`, the token-level `all` position as `all_dtype` (half by default: it is big)."""
    import torch

    for p in positions:
        if p not in POSITIONS:
            raise SelflabError(f"unknown position {p!r}", f"use one of {', '.join(POSITIONS)}")
    _check_inputs(inputs)
    if not getattr(tokenizer, "is_fast", False):
        raise SelflabError(
            "probing needs a fast tokenizer (character offsets)", "use a tokenizers-backed model"
        )
    num_layers = int(model.config.num_hidden_layers)
    keep = list(range(num_layers + 1)) if layers is None else sorted(set(int(x) for x in layers))
    if keep and (keep[0] < 0 or keep[-1] > num_layers):
        raise SelflabError(f"layers must lie in 0..{num_layers}", "pick layer indices of this model")
    device = next(model.parameters()).device
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id

    bos = getattr(tokenizer, "bos_token", None)
    encoded = [
        tokenizer(
            x.text,
            # a rendered chat template already starts with BOS; a second one would read the model in
            # a context it never generated in (the backends encode rendered prompts without it)
            add_special_tokens=not (bos and x.text.startswith(bos)),
            return_offsets_mapping=True,
        )
        for x in inputs
    ]
    for k, enc in enumerate(encoded):
        # truncating would silently move `last` off the real last token and drop the answer span
        if len(enc["input_ids"]) > max_length:
            raise SelflabError(
                f"input {k} has {len(enc['input_ids'])} tokens, more than max_length={max_length}",
                "raise max_length or shorten the text",
            )
    order = sorted(range(len(inputs)), key=lambda i: len(encoded[i]["input_ids"]))
    pooled: dict[str, list[np.ndarray | None]] = {p: [None] * len(inputs) for p in positions if p != "all"}
    seqs: list[np.ndarray | None] = [None] * len(inputs)

    last_block = _last_block(model, num_layers)
    captured: dict[str, Any] = {}

    def hook(_module: Any, _inp: Any, out: Any) -> None:
        captured["last"] = out[0] if isinstance(out, tuple) else out

    handle = last_block.register_forward_hook(hook)
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            for b0 in range(0, len(order), batch_size):
                idx = order[b0 : b0 + batch_size]
                ids = [encoded[i]["input_ids"] for i in idx]
                width = max(len(s) for s in ids)
                input_ids = torch.full((len(idx), width), pad_id, dtype=torch.long)
                mask = torch.zeros((len(idx), width), dtype=torch.long)
                starts = []
                for r, s in enumerate(ids):
                    start = width - len(s) if padding_side == "left" else 0
                    input_ids[r, start : start + len(s)] = torch.tensor(s)
                    mask[r, start : start + len(s)] = 1
                    starts.append(start)
                position_ids = (mask.cumsum(-1) - 1).clamp(min=0)
                out = model(
                    input_ids=input_ids.to(device),
                    attention_mask=mask.to(device),
                    position_ids=position_ids.to(device),
                    output_hidden_states=True,
                    use_cache=False,
                )
                states = list(out.hidden_states)
                if "last" in captured:
                    states[-1] = captured.pop("last")  # raw block output, not the final norm
                stacked = torch.stack([states[j] for j in keep], dim=2).float().cpu().numpy()  # (B, T, L', H)
                for r, i in enumerate(idx):
                    n = len(ids[r])
                    seq = stacked[r, starts[r] : starts[r] + n]  # (n, L', H), pads removed
                    tok_idx = _span_token_indices(encoded[i]["offset_mapping"], inputs[i].span)
                    for p in pooled:
                        if p == "last":
                            pooled[p][i] = seq[n - 1]
                        elif p == "answer_last":
                            pooled[p][i] = seq[tok_idx[-1]]
                        else:
                            pooled[p][i] = seq[tok_idx].mean(axis=0)
                    if "all" in positions:
                        first = max(tok_idx[0] - 1, 0)
                        seqs[i] = seq[first:].astype(all_dtype)
    finally:
        handle.remove()
        model.train(was_training)

    result: dict[str, Activations] = {}
    for p, rows in pooled.items():
        result[p] = Activations(position=p, data=np.stack(rows).astype(dtype), layers=keep)  # type: ignore[arg-type]
    if "all" in positions:
        lengths = np.array([s.shape[0] for s in seqs], dtype=np.int64)  # type: ignore[union-attr]
        result["all"] = Activations(position="all", data=np.concatenate(seqs), layers=keep, lengths=lengths)  # type: ignore[arg-type]
    return result


# -- disk cache -------------------------------------------------------------------------------


def inputs_hash(inputs: Sequence[ProbeInput]) -> str:
    """A hash of texts and spans, so a changed dataset never reuses stale activations."""
    h = hashlib.sha256()
    for x in inputs:
        h.update(json.dumps([x.text, list(x.span) if x.span else None], ensure_ascii=False).encode("utf-8"))
        h.update(b"\n")
    return h.hexdigest()[:16]


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)[:80]


class ActivationCache:
    """Activations on disk (safetensors), one file per model x dataset x position x inputs hash x
    layer set, so a sweep or a second command never recomputes them."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def path(self, model_name: str, dataset: str, position: str, digest: str, layers: Sequence[int]) -> Path:
        lay = hashlib.sha256(",".join(map(str, layers)).encode()).hexdigest()[:8]
        name = f"{_slug(dataset)}__{position}__{digest}__L{lay}__v{CACHE_VERSION}.safetensors"
        return self.root / _slug(model_name) / name

    def load(self, path: Path) -> Activations | None:
        if not path.is_file():
            return None
        from safetensors.numpy import load_file

        try:
            blob = load_file(str(path))
        except Exception:  # a corrupt or half-written file: recompute rather than crash
            return None
        lengths = blob.get("lengths")
        return Activations(
            position=path.name.split("__")[1],
            data=blob["data"],
            layers=[int(x) for x in blob["layers"].tolist()],
            lengths=lengths,
        )

    def save(self, path: Path, acts: Activations) -> None:
        from safetensors.numpy import save_file

        path.parent.mkdir(parents=True, exist_ok=True)
        tensors = {"data": np.ascontiguousarray(acts.data), "layers": np.array(acts.layers, dtype=np.int64)}
        if acts.lengths is not None:
            tensors["lengths"] = acts.lengths.astype(np.int64)
        tmp = path.with_suffix(".tmp")
        save_file(tensors, str(tmp))
        tmp.replace(path)

    def get_or_extract(
        self,
        model_name: str,
        dataset: str,
        model: Any,
        tokenizer: Any,
        inputs: Sequence[ProbeInput],
        positions: Sequence[str],
        layers: Sequence[int] | None = None,
        **kwargs: Any,
    ) -> dict[str, Activations]:
        """Load every requested position from the cache; extract only the missing ones."""
        num_layers = int(model.config.num_hidden_layers)
        keep = list(range(num_layers + 1)) if layers is None else sorted(set(int(x) for x in layers))
        digest = inputs_hash(inputs)
        out: dict[str, Activations] = {}
        missing = []
        for p in positions:
            hit = self.load(self.path(model_name, dataset, p, digest, keep))
            if hit is not None:
                out[p] = hit
            else:
                missing.append(p)
        if missing:
            fresh = extract(model, tokenizer, inputs, positions=missing, layers=keep, **kwargs)
            for p, acts in fresh.items():
                self.save(self.path(model_name, dataset, p, digest, keep), acts)
                out[p] = acts
        return out
