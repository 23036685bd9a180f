"""`load_model(spec)`: the one entry point from a spec string to a live `LanguageModel`.

Instances are cached per normalised spec, so a judge and a policy that name the same model share
one engine (and its batches) instead of loading the weights twice.
"""

from __future__ import annotations

import atexit
import threading
from typing import Any

from selflab.errors import ModelSpecError
from selflab.models.spec import ModelSpec, parse_spec
from selflab.models.types import LanguageModel

_CACHE: dict[str, LanguageModel] = {}
_LOCK = threading.Lock()

_INT_OPTIONS = {"prefix_cache_mb", "concurrency", "retries", "max_batch_size", "seed", "draft_tokens"}
_BOOL_OPTIONS = {"prefix_reuse", "lean_decode"}
_FLOAT_OPTIONS = {"timeout", "backoff"}


def _coerce(options: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in options.items():
        try:
            if k in _BOOL_OPTIONS:
                if v.lower() not in ("1", "0", "true", "false", "yes", "no"):
                    raise ValueError(v)
                out[k] = v.lower() in ("1", "true", "yes")
            elif k == "threads":  # torch.set_num_threads raises a bare RuntimeError below 1
                out[k] = v if v == "auto" else int(v)
                if out[k] != "auto" and out[k] < 1:
                    raise ModelSpecError(
                        f"model spec option threads={v!r} must be >= 1", "give threads=auto or N >= 1"
                    )
            else:
                out[k] = int(v) if k in _INT_OPTIONS else float(v) if k in _FLOAT_OPTIONS else v
        except ValueError as exc:
            kind = "true or false" if k in _BOOL_OPTIONS else "a number"
            raise ModelSpecError(f"model spec option {k}={v!r} is not {kind}", f"give {k} {kind}") from exc
    return out


def _build(spec: ModelSpec, overrides: dict[str, Any]) -> LanguageModel:
    options = {**_coerce(spec.options), **overrides}
    if spec.backend in ("embedded", "hf"):
        from selflab.models import embedded
        from selflab.models.hf import HFModel

        path = embedded.prepare() if spec.backend == "embedded" else spec.target
        allowed = {
            "device",
            "dtype",
            "quant",
            "max_batch_size",
            "threads",
            "prefix_reuse",
            "prefix_cache_mb",
            "lean_decode",
            "speculate",
            "draft_tokens",
            "seed",
        }
        unknown = set(options) - allowed
        if unknown:
            raise ModelSpecError(
                f"unknown option(s) {sorted(unknown)} for a local model", f"allowed: {sorted(allowed)}"
            )
        model = HFModel(path, **options)
        if spec.backend == "embedded":
            model.name = embedded.EMBEDDED_NAME
        return model
    if spec.backend == "openai":
        from selflab.models.openai_backend import OpenAIModel

        allowed = {"key_env", "concurrency", "timeout", "retries", "backoff", "on_error", "constraints"}
        unknown = set(options) - allowed
        if unknown:
            raise ModelSpecError(
                f"unknown option(s) {sorted(unknown)} for an openai model", f"allowed: {sorted(allowed)}"
            )
        return OpenAIModel(spec.target, spec.base_url or "", **options)
    if spec.backend == "vllm":
        from selflab.models.vllm_backend import build

        return build(spec.target, {**spec.options, **{k: str(v) for k, v in overrides.items()}})
    raise ModelSpecError(f"unknown backend {spec.backend!r}", "see `selflab models`")


def load_model(spec: str, cache: bool = True, **overrides: Any) -> LanguageModel:
    """Return the model a spec names (see `selflab.models.spec`), loading it once per process."""
    parsed = parse_spec(spec)
    key = parsed.key + repr(sorted(overrides.items()))
    if not cache:
        return _build(parsed, overrides)
    with _LOCK:
        if key not in _CACHE:
            _CACHE[key] = _build(parsed, overrides)
        return _CACHE[key]


def clear_cache() -> None:
    """Close and forget cached models (tests, or to free memory between loop iterations)."""
    with _LOCK:
        for model in _CACHE.values():
            close = getattr(model, "close", None)
            if callable(close):
                close()
        _CACHE.clear()


# Stop engine worker threads before the interpreter tears torch down under them (otherwise a script
# that loaded a model can end with "terminate called without an active exception" and exit code 134).
atexit.register(clear_cache)
