"""Model spec strings: one string selects a backend everywhere (CLI flags, configs, judges, games).

    smollm2-135m                                  the embedded default model
    hf:/path/to/folder[?device=cuda&dtype=bfloat16]
    openai:MODEL@http://127.0.0.1:8000/v1[?key_env=OPENAI_API_KEY&concurrency=8&timeout=60&retries=4]
        constraints=auto|openai|vllm|vllm-legacy|llamacpp|llamacpp-llguidance|validate|reject
        says how a request's regex/grammar/JSON-schema constraint reaches the server
        (see selflab.models.constraint_wire; every output is checked against it either way)
    vllm:/path/to/folder[?gpu_memory_utilization=0.5&tensor_parallel_size=2]   (GPU, `vllm` extra)

Options after `?` are backend keyword arguments. Secrets never appear in a spec: the openai backend
reads its key from the environment variable named by `key_env`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl

from selflab.errors import ModelSpecError
from selflab.models.adapters import is_model_folder
from selflab.models.embedded import EMBEDDED_NAME

EMBEDDED_ALIASES = {EMBEDDED_NAME, "smollm2", "default"}
SPEC_HELP = (
    f"use '{EMBEDDED_NAME}' (embedded default), 'hf:/path/to/hf-folder', "
    "or 'openai:MODEL@http://HOST:PORT/v1'"
)


@dataclass(frozen=True)
class ModelSpec:
    backend: str  # "embedded" | "hf" | "openai"
    target: str  # folder path for hf, model name for openai, embedded name
    base_url: str | None = None
    options: dict[str, str] = field(default_factory=dict)

    @property
    def key(self) -> str:
        opts = "&".join(f"{k}={v}" for k, v in sorted(self.options.items()))
        return f"{self.backend}:{self.target}@{self.base_url or ''}?{opts}"


def parse_spec(spec: str) -> ModelSpec:
    """Parse and validate a spec string; raise `ModelSpecError` naming the problem and the fix."""
    if not isinstance(spec, str) or not spec.strip():
        raise ModelSpecError("empty model spec", SPEC_HELP)
    spec = spec.strip()
    body, _, query = spec.partition("?")
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError as exc:
        raise ModelSpecError(
            f"bad options in model spec {spec!r}: {exc}", "write options as ?key=value&key2=value2"
        ) from exc
    # A blank or repeated option is a typo: dropping it (or all but the last) would silently load a
    # model configured differently from what the spec seems to say.
    for key, value in pairs:
        if not value.strip():
            raise ModelSpecError(f"option {key!r} has no value in model spec {spec!r}", f"write {key}=VALUE")
    keys = [key for key, _ in pairs]
    repeated = sorted({key for key in keys if keys.count(key) > 1})
    if repeated:
        raise ModelSpecError(
            f"option(s) {repeated} given twice in model spec {spec!r}", "give each option once"
        )
    options = dict(pairs)

    if body in EMBEDDED_ALIASES:
        return ModelSpec("embedded", EMBEDDED_NAME, options=options)
    scheme, sep, rest = body.partition(":")
    if not sep:
        raise ModelSpecError(f"unknown model spec {spec!r}", SPEC_HELP)
    if scheme == "hf":
        path = Path(rest).expanduser()
        if not path.is_dir():
            raise ModelSpecError(f"model folder {path} does not exist", f"check the path; {SPEC_HELP}")
        if not is_model_folder(path):
            raise ModelSpecError(
                f"{path} is not a Hugging Face model folder (no config.json or adapter_config.json)",
                "point hf: at a folder saved with save_pretrained (config.json + weights + tokenizer)",
            )
        return ModelSpec("hf", str(path.resolve()), options=options)
    if scheme == "vllm":  # vLLM in process (GPU); see selflab.models.vllm_backend
        if rest in EMBEDDED_ALIASES:
            return ModelSpec("vllm", EMBEDDED_NAME, options=options)
        return ModelSpec("vllm", parse_spec(f"hf:{rest}").target, options=options)
    if scheme == "openai":
        model, at, url = rest.partition("@")
        if not model or not at or not url.startswith(("http://", "https://")):
            raise ModelSpecError(
                f"bad openai spec {spec!r}",
                "write it as openai:MODEL@http://HOST:PORT/v1 (e.g. a vLLM server)",
            )
        return ModelSpec("openai", model, base_url=url.rstrip("/"), options=options)
    raise ModelSpecError(f"unknown model backend {scheme!r} in {spec!r}", SPEC_HELP)
