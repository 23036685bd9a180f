"""The local backend: a transformers causal LM in this process, served by the batching engine.

`HFModel` implements `LocalLanguageModel`: `generate` goes through `BatchingEngine` (thread-safe,
continuously batched), `score` and `hidden_states` are direct batched forward passes.

Tokenization rules (shared by generate and score so their numbers agree): a chat is rendered with the
chat template (plus `assistant_prefix`) and tokenized without adding special tokens, since the
template writes them itself; a raw `prompt` string is tokenized as the tokenizer does by default.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import torch

from selflab.errors import ModelSpecError, SelflabError
from selflab.models.adapters import is_model_folder, load_causal_lm
from selflab.models.constraints import validate
from selflab.models.dtypes import resolve_dtype
from selflab.models.engine import BatchingEngine, common_prefix_len
from selflab.models.engine_cache import KVBuffer, cache_kwargs
from selflab.models.engine_decode import decoder_for
from selflab.models.engine_speculate import DRAFT_TOKENS, speculator_for
from selflab.models.types import Completion, GenerationRequest, HiddenStates, Message

# Shared prompt length (tokens) from which `score` runs the prompt once for all continuations.
_MIN_SHARED_PREFIX = 16
# Padded tokens per forward pass in `score` and `hidden_states`.
_TOKENS_PER_BATCH = 2048


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ModelSpecError(f"device '{device}' was asked for but CUDA is not available", "use device='cpu'")
    if not (device == "cpu" or device.startswith("cuda")):
        raise ModelSpecError(f"unknown device '{device}'", "use 'auto', 'cpu' or 'cuda'")
    return torch.device(device)


class HFModel:
    """A local HF-format causal LM (folder with config, weights and tokenizer)."""

    # The engine computes a prompt start shared by requests of one call once (`engine_shared`), so
    # callers need not send one request ahead to warm its prefix cache (see `envs.runner._leaders`).
    shares_prompt_starts = True

    def __init__(
        self,
        path: str | Path,
        device: str = "auto",
        dtype: str = "default",
        max_batch_size: int = 64,
        name: str | None = None,
        seed: int = 0,
        prefix_reuse: bool = True,
        threads: int | str | None = "auto",
        prefix_cache_mb: int = 2048,
        quant: str = "none",
        lean_decode: bool = True,
        speculate: str = "auto",
        draft_tokens: int = DRAFT_TOKENS,
    ) -> None:
        from transformers import AutoTokenizer

        folder = Path(path).expanduser()
        if not is_model_folder(folder):
            raise ModelSpecError(
                f"'{folder}' is not a Hugging Face model folder (no config.json or adapter_config.json)",
                "point hf:PATH at a folder saved with save_pretrained (config.json, weights, tokenizer)",
            )
        if max_batch_size < 1:
            raise SelflabError(
                f"max_batch_size must be >= 1, got {max_batch_size}", "pass a positive batch size"
            )
        self.path = folder
        self.name = name or folder.name
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype, self.device)
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(folder)
            # an adapter folder loads as its base with the adapter merged in (see models.adapters)
            self.model = load_causal_lm(folder, dtype=self.dtype, attn_implementation="sdpa")
        except (OSError, ValueError) as exc:
            raise ModelSpecError(
                f"could not load the model in '{folder}': {exc}", "check the folder's files"
            ) from exc
        self.model.to(self.device).eval()
        self.quant = _quantize(self.model, quant, self.device)
        # CPU decode steps of llama-family models take the lean path (`engine_decode`): the model's
        # own weights by default, a low-bit decode format under quant=...; a single stream is
        # drafted by a low-bit copy and checked by it (`engine_speculate`).
        decoder = (
            decoder_for(self.model, self.quant)
            if self.device.type == "cpu" and (lean_decode or self.quant != "none")
            else None
        )
        try:
            speculator = speculator_for(self.model, decoder, speculate, draft_tokens)
        except ValueError as exc:
            raise ModelSpecError(str(exc), "e.g. hf:PATH?speculate=none") from exc
        self.engine = BatchingEngine(
            self.model,
            self.tokenizer,
            max_batch_size=max_batch_size,
            prefix_reuse=prefix_reuse,
            seed=seed,
            threads=threads,
            prefix_cache_mb=prefix_cache_mb,
            decoder=decoder,
            speculator=speculator,
        )

    def __repr__(self) -> str:
        return f"HFModel(name={self.name!r}, device={self.device}, dtype={self.dtype})"

    # ---------------------------------------------------------------- text <-> tokens

    def render(
        self, messages: list[Message] | tuple[Message, ...], add_generation_prompt: bool = True
    ) -> str:
        """Chat template text; a model without a template gets a plain 'role: content' transcript."""
        turns = [{"role": m.role, "content": m.content} for m in messages]
        if getattr(self.tokenizer, "chat_template", None):
            return self.tokenizer.apply_chat_template(
                turns, tokenize=False, add_generation_prompt=add_generation_prompt
            )
        text = "".join(f"{t['role']}: {t['content']}\n" for t in turns)
        return text + ("assistant:" if add_generation_prompt else "")

    def _encode(self, text: str, raw: bool) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=raw)["input_ids"])

    def prompt_ids(self, request: GenerationRequest) -> list[int]:
        """The exact tokens the model is conditioned on for a request."""
        if request.prompt is not None:
            return self._encode(request.prompt + request.assistant_prefix, raw=True)
        return self._encode(self.render(request.messages) + request.assistant_prefix, raw=False)

    # ---------------------------------------------------------------- generation

    def generate(self, requests: list[GenerationRequest]) -> list[Completion]:
        """Thread-safe; all requests are queued at once so the engine batches them. An invalid
        constraint raises `ConstraintError` before any request of the call is queued."""
        return [f.result() for f in self._submit(requests)]

    async def agenerate(self, requests: list[GenerationRequest]) -> list[Completion]:
        futures = self._submit(requests)
        return list(await asyncio.gather(*(asyncio.wrap_future(f) for f in futures)))

    def _submit(self, requests: list[GenerationRequest]) -> list:
        for r in requests:
            if r.sampling.constraint is not None:
                validate(r.sampling.constraint)
        return self.engine.submit_all([(self.prompt_ids(r), r.sampling) for r in requests])

    def close(self) -> None:
        """Stop the engine thread (pending requests resolve with an error completion)."""
        self.engine.close()

    def __enter__(self) -> HFModel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---------------------------------------------------------------- scoring

    def score(
        self, prompt: str | list[Message] | tuple[Message, ...], continuations: list[str]
    ) -> list[float]:
        """Summed log-probability of each continuation after the prompt.

        Prompt and prompt+continuation are tokenized whole; the tokens after their common prefix are
        scored, so a token that merges across the boundary is counted (once) with the continuation."""
        if isinstance(prompt, str):
            text, raw = prompt, True
        else:
            text, raw = self.render(list(prompt)), False
        prompt_ids = self._encode(text, raw)
        items: list[tuple[list[int], int]] = []
        for cont in continuations:
            full = self._encode(text + cont, raw)
            start = common_prefix_len([prompt_ids, full])
            if start == 0 and len(full) > 0:
                raise SelflabError(
                    "score() needs a prompt with at least one token before the continuation",
                    "pass a non-empty prompt (the first token has no probability without context)",
                )
            items.append((full, start))
        todo = [item for item in items if item[1] < len(item[0])]
        shared = min((start for _, start in todo), default=0)
        if len(todo) >= 2 and shared >= _MIN_SHARED_PREFIX:
            scores = iter(
                self._score_shared_prefix(
                    prompt_ids[:shared], [(ids[shared:], start - shared) for ids, start in todo]
                )
            )
            return [next(scores) if start < len(ids) else 0.0 for ids, start in items]
        return self._score_tokens(items)

    def score_batch(
        self, requests: list[tuple[str | list[Message] | tuple[Message, ...], list[str]]]
    ) -> list[list[float]]:
        """`score` for many (prompt, continuations) pairs in batched forward passes (score_batch.py)."""
        from selflab.models.score_batch import score_many

        return score_many(self, requests, _TOKENS_PER_BATCH)

    def _score_shared_prefix(self, prefix: list[int], items: list[tuple[list[int], int]]) -> list[float]:
        """Like `_score_tokens` for sequences `prefix + rest`, running the shared prefix once: its
        keys/values are copied to every row of each batch, and only the rests are computed.
        Each item is (rest, start) with tokens rest[t] for t >= start scored."""
        model, device = self.model, self.device
        num_layers = int(model.config.get_text_config().num_hidden_layers)
        p = len(prefix)
        head = KVBuffer(num_layers, 1, p, device)
        head.valid[:, :p] = True
        causal = torch.ones(p, p, dtype=torch.bool, device=device).tril()[None, None]
        with torch.inference_mode():
            out = model(
                input_ids=torch.tensor([prefix], device=device),
                position_ids=torch.arange(p, device=device)[None],
                attention_mask=causal,
                **cache_kwargs(model, head.writer()),
                use_cache=True,
                logits_to_keep=1,
            )
            first_logp = torch.log_softmax(out.logits[0, -1].float(), dim=-1).cpu()
        head.length = p
        results = [0.0] * len(items)
        for batch in _length_batches(list(range(len(items))), [len(rest) for rest, _ in items]):
            n, span = len(batch), max(len(items[i][0]) for i in batch)
            buf = KVBuffer(num_layers, n, p + span, device)
            buf.allocate(head.data.shape[3], head.data.shape[5], head.data.dtype)
            buf.data[:, :, :, :, :p] = head.data[:, :, 0:1, :, :p]
            buf.valid[:, :p] = True
            buf.length = p
            ids = torch.full((n, span), self.engine.pad_id, dtype=torch.long)
            for r, i in enumerate(batch):
                rest = items[i][0]
                ids[r, : len(rest)] = torch.tensor(rest)
                buf.valid[r, p : p + len(rest)] = True
            cols = torch.arange(p + span, device=device)
            qcols = torch.arange(p, p + span, device=device)
            # Right padding: every query sees the prefix, so no attention row is empty.
            mask = ((cols[None, :] <= qcols[:, None])[None] & buf.valid[:, None, :])[:, None]
            with torch.inference_mode():
                out = model(
                    input_ids=ids.to(device),
                    position_ids=(p + torch.arange(span, device=device))[None].expand(n, -1),
                    attention_mask=mask,
                    **cache_kwargs(model, buf.writer()),
                    use_cache=True,
                )
                logp = torch.log_softmax(out.logits.float(), dim=-1).cpu()
            for r, i in enumerate(batch):
                rest, start = items[i]
                # rest[0] is predicted by the prefix's last position, rest[t] by rest position t - 1.
                total = sum(
                    float(first_logp[rest[t]]) if t == 0 else float(logp[r, t - 1, rest[t]])
                    for t in range(start, len(rest))
                )
                results[i] = total
        return results

    def _score_tokens(self, items: list[tuple[list[int], int]]) -> list[float]:
        """Sum of log p(ids[t] | ids[:t]) for t >= start, for each (ids, start); batched by length."""
        results = [0.0] * len(items)
        todo = [i for i, (ids, start) in enumerate(items) if start < len(ids)]
        pad = self.engine.pad_id
        for batch in _length_batches(todo, [len(ids) for ids, _ in items]):
            longest = max(len(items[i][0]) for i in batch)
            ids = torch.full((len(batch), longest), pad, dtype=torch.long)
            attn = torch.zeros((len(batch), longest), dtype=torch.long)
            keep = torch.zeros((len(batch), longest), dtype=torch.bool)
            targets = []
            for r, i in enumerate(batch):
                seq, start = items[i]
                ids[r, : len(seq)] = torch.tensor(seq)
                attn[r, : len(seq)] = 1
                keep[r, start - 1 : len(seq) - 1] = True  # position t-1 predicts token t
                targets.extend(seq[start:])
            with torch.inference_mode():
                out = self.model(
                    input_ids=ids.to(self.device),
                    attention_mask=attn.to(self.device),
                    logits_to_keep=keep.to(self.device),
                    use_cache=False,
                )
                logits = out.logits.reshape(-1, out.logits.shape[-1]).float()
                logp = torch.log_softmax(logits, dim=-1)
                picked = (
                    logp.gather(1, torch.tensor(targets, device=logp.device).unsqueeze(1)).squeeze(1).cpu()
                )
            offset = 0
            for i in batch:
                seq, start = items[i]
                n = len(seq) - start
                results[i] = float(picked[offset : offset + n].double().sum())
                offset += n
        return results

    # ---------------------------------------------------------------- internals

    def hidden_states(self, texts: list[str]) -> list[HiddenStates]:
        """Per-layer hidden states (layer 0 = embeddings) of each text, tokenized as a raw prompt."""
        encoded = [self.tokenizer(t, add_special_tokens=True, return_offsets_mapping=True) for t in texts]
        results: list[HiddenStates | None] = [None] * len(texts)
        base = self.model.base_model
        pad = self.engine.pad_id
        lengths = [len(e["input_ids"]) for e in encoded]
        for batch in _length_batches(list(range(len(texts))), lengths):
            longest = max(1, max(lengths[i] for i in batch))
            ids = torch.full((len(batch), longest), pad, dtype=torch.long)
            attn = torch.zeros((len(batch), longest), dtype=torch.long)
            for r, i in enumerate(batch):
                seq = encoded[i]["input_ids"]
                if seq:
                    ids[r, : len(seq)] = torch.tensor(seq)
                attn[r, : len(seq)] = 1
            with torch.inference_mode():
                out = base(
                    input_ids=ids.to(self.device),
                    attention_mask=attn.to(self.device),
                    output_hidden_states=True,
                    use_cache=False,
                )
            stacked = torch.stack(out.hidden_states).float().cpu()  # (layers+1, batch, tokens, hidden)
            for r, i in enumerate(batch):
                seq = encoded[i]["input_ids"]
                n = len(seq)
                layers = [
                    np.ascontiguousarray(stacked[layer, r, :n].numpy()) for layer in range(stacked.shape[0])
                ]
                results[i] = HiddenStates(
                    tokens=self.tokenizer.convert_ids_to_tokens(seq),
                    layers=layers,
                    offsets=[tuple(o) for o in encoded[i]["offset_mapping"]],
                )
        return [r for r in results if r is not None]


def _quantize(model: torch.nn.Module, quant: str, device: torch.device) -> str:
    """Apply the `quant=` option (none, int8, int4[-gN], fp16, int8-dynamic; see `selflab.models.quant`);
    returns it."""
    from selflab.models.quant import apply_quant

    return apply_quant(model, quant, device)


def _length_batches(
    indices: list[int], lengths: list[int], budget: int = _TOKENS_PER_BATCH
) -> list[list[int]]:
    """Indices grouped by similar length so that rows x longest <= budget (at least one per batch)."""
    batches: list[list[int]] = []
    for i in sorted(indices, key=lambda i: lengths[i]):
        if batches and (len(batches[-1]) + 1) * lengths[i] <= budget:
            batches[-1].append(i)
        else:
            batches.append([i])
    return batches
