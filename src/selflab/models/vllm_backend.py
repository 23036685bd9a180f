"""`vllm:` — generation with vLLM inside this process (the `vllm` extra; a CUDA GPU).

    vllm:/path/to/hf-folder?gpu_memory_utilization=0.5&tensor_parallel_size=2&max_model_len=8192
    vllm:smollm2-135m                       (the embedded model's cached safetensors folder)

What our requests become: a chat request is rendered with the model's chat template (plus the
`assistant_prefix`) and sent as token ids, exactly like the hf backend, so both backends condition
on the same tokens. Each request keeps its own seed (vLLM seeds per request), `logprobs=True`
asks for the sampled token's log-probability, a `Constraint` becomes vLLM structured outputs
(`regex`, `grammar`, `json`; the default `guidance` backend reads the same Lark grammars as our
engine), and `score` reads continuation log-probabilities from `prompt_logprobs`.

For a model that must be retrained between loop iterations, the server route is often simpler:
`vllm serve` + `openai:MODEL@http://HOST:8000/v1` (see docs/gpu-and-clusters.md).
"""

from __future__ import annotations

import json
import threading
from typing import Any

from selflab.errors import ModelSpecError, SelflabError
from selflab.models.types import Completion, GenerationRequest, Message, SamplingParams

INSTALL = "pip install 'selflab[vllm]' on a machine with a CUDA GPU"
# Spec options passed to vllm.LLM (after coercion); anything else is a spec error.
_INT = {"tensor_parallel_size", "max_model_len", "max_num_seqs", "seed"}
_FLOAT = {"gpu_memory_utilization"}
_STR = {"dtype", "quantization", "structured_backend"}
_BOOL = {"enable_prefix_caching", "enforce_eager"}
OPTIONS = _INT | _FLOAT | _STR | _BOOL


def import_vllm() -> Any:
    """Import vLLM, or say why it cannot run here."""
    try:
        import vllm
    except ImportError as exc:
        raise SelflabError("the vllm: backend needs vLLM, which is not installed", INSTALL) from exc
    import torch

    if not torch.cuda.is_available():
        raise SelflabError(
            "the vllm: backend needs a CUDA GPU and none is visible",
            "use hf:/path (CPU or GPU) here, or run `vllm serve` on a GPU machine and use openai:MODEL@http://HOST:8000/v1",
        )
    return vllm


def coerce_options(options: dict[str, str]) -> dict[str, Any]:
    unknown = set(options) - OPTIONS
    if unknown:
        raise ModelSpecError(
            f"unknown option(s) {sorted(unknown)} for a vllm model", f"allowed: {sorted(OPTIONS)}"
        )
    out: dict[str, Any] = {}
    for k, v in options.items():
        try:
            out[k] = (
                int(v)
                if k in _INT
                else float(v)
                if k in _FLOAT
                else v.lower() in ("1", "true", "yes")
                if k in _BOOL
                else v
            )
        except ValueError as exc:
            raise ModelSpecError(f"vllm option {k}={v!r} is not a number", f"give {k} a number") from exc
    return out


def sampling_params(vllm: Any, s: SamplingParams) -> Any:
    """Our `SamplingParams` as vLLM's (one per request, so seeds and constraints stay per request)."""
    kwargs: dict[str, Any] = dict(
        temperature=s.temperature,
        top_p=s.top_p,
        top_k=s.top_k if s.top_k > 0 else -1,
        max_tokens=s.max_new_tokens,
        stop=list(s.stop) or None,
        seed=s.seed,
        logprobs=1 if s.logprobs else None,
    )
    if s.constraint is not None:
        from vllm.sampling_params import StructuredOutputsParams

        field = {"regex": "regex", "grammar": "grammar", "json_schema": "json"}[s.constraint.kind]
        value: Any = (
            json.loads(s.constraint.value) if s.constraint.kind == "json_schema" else s.constraint.value
        )
        kwargs["structured_outputs"] = StructuredOutputsParams(**{field: value})
    return vllm.SamplingParams(**kwargs)


class VLLMModel:
    """A `LanguageModel` over `vllm.LLM`. `generate` sends all requests in one call (vLLM batches
    them with continuous batching); calls from several threads are serialised."""

    def __init__(self, path: str, name: str | None = None, **options: Any) -> None:
        self._vllm = import_vllm()
        structured = options.pop("structured_backend", "guidance")
        self.llm = self._vllm.LLM(model=path, structured_outputs_config={"backend": structured}, **options)
        self.tokenizer = self.llm.get_tokenizer()
        self.name = name or path
        self._lock = threading.Lock()

    def render(
        self, messages: list[Message] | tuple[Message, ...], add_generation_prompt: bool = True
    ) -> str:
        turns = [{"role": m.role, "content": m.content} for m in messages]
        if getattr(self.tokenizer, "chat_template", None):
            return self.tokenizer.apply_chat_template(
                turns, tokenize=False, add_generation_prompt=add_generation_prompt
            )
        return "".join(f"{t['role']}: {t['content']}\n" for t in turns) + (
            "assistant:" if add_generation_prompt else ""
        )

    def _encode(self, text: str, raw: bool) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=raw)["input_ids"])

    def prompt_ids(self, request: GenerationRequest) -> list[int]:
        if request.prompt is not None:
            return self._encode(request.prompt + request.assistant_prefix, raw=True)
        return self._encode(self.render(request.messages) + request.assistant_prefix, raw=False)

    def generate(self, requests: list[GenerationRequest]) -> list[Completion]:
        if not requests:
            return []
        prompts = [{"prompt_token_ids": self.prompt_ids(r)} for r in requests]
        params = [sampling_params(self._vllm, r.sampling) for r in requests]
        try:
            with self._lock:
                outputs = self.llm.generate(prompts, params, use_tqdm=False)
        except Exception as err:  # noqa: BLE001 - a failed batch is a failed completion per request
            return [
                Completion(text="", finish_reason="error", error=f"{type(err).__name__}: {err}")
                for _ in requests
            ]
        return [self._completion(r, o) for r, o in zip(requests, outputs, strict=True)]

    def _completion(self, request: GenerationRequest, out: Any) -> Completion:
        best = out.outputs[0]
        reason = (
            "length"
            if best.finish_reason == "length"
            else "stop"
            if best.finish_reason == "stop"
            else "error"
        )
        lps = tokens = None
        if request.sampling.logprobs and best.logprobs is not None:
            lps, tokens = [], []
            for tid, step in zip(best.token_ids, best.logprobs, strict=False):
                entry = step[tid]
                lps.append(float(entry.logprob))
                tokens.append(entry.decoded_token or self.tokenizer.decode([tid]))
        return Completion(
            text=best.text,
            prompt_tokens=len(out.prompt_token_ids or []),
            completion_tokens=len(best.token_ids),
            finish_reason=reason,  # type: ignore[arg-type]
            token_logprobs=lps,
            tokens=tokens,
            error=None if reason != "error" else f"vLLM finish reason {best.finish_reason!r}",
        )

    def score(
        self, prompt: str | list[Message] | tuple[Message, ...], continuations: list[str]
    ) -> list[float]:
        """Summed log-probability of each continuation after the prompt, from `prompt_logprobs`
        (tokens after the common prefix of prompt and prompt+continuation, as the hf backend does)."""
        text, raw = (prompt, True) if isinstance(prompt, str) else (self.render(list(prompt)), False)
        base = self._encode(text, raw)
        fulls = [self._encode(text + c, raw) for c in continuations]
        starts = []
        for full in fulls:
            n = 0
            while n < min(len(base), len(full)) and base[n] == full[n]:
                n += 1
            if n == 0 and full:
                raise SelflabError(
                    "score() needs a non-empty prompt", "pass a prompt with at least one token"
                )
            starts.append(n)
        params = self._vllm.SamplingParams(max_tokens=1, prompt_logprobs=0, temperature=0.0)
        with self._lock:
            outs = self.llm.generate([{"prompt_token_ids": f} for f in fulls], params, use_tqdm=False)
        scores = []
        for full, start, out in zip(fulls, starts, outs, strict=True):
            plp = out.prompt_logprobs or []
            scores.append(sum(float(plp[i][full[i]].logprob) for i in range(max(start, 1), len(full))))
        return scores

    def close(self) -> None:
        self.llm = None


def build(target: str, options: dict[str, str]) -> VLLMModel:
    """`vllm:` spec -> model (the embedded name maps to its cached safetensors folder)."""
    from selflab.models import embedded

    kwargs = coerce_options(options)
    if target == embedded.EMBEDDED_NAME:
        return VLLMModel(str(embedded.prepare()), name=f"vllm:{target}", **kwargs)
    return VLLMModel(target, name=f"vllm:{target}", **kwargs)
