"""Which float type a local model runs in.

- `default` (what a spec without `dtype=` gets): bfloat16 on CUDA, float32 on CPU. The main job's
  correctness numbers were measured in float32 on CPU, so the CPU default stays there.
- `auto`: bfloat16 where the hardware multiplies it natively (CUDA, or a CPU with the AVX512_BF16
  or AMX_BF16 instructions), float32 elsewhere. On a CPU without them bf16 is emulated and decoding
  was measured 3.5x slower than float32 (issue #17), so `auto` never picks it there.
- `float32`, `bfloat16`, `float16`: exactly that.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import torch

from selflab.errors import ModelSpecError

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
CHOICES = ("default", "auto", *DTYPES)
# /proc/cpuinfo flags that mean bf16 matrix multiplies run in hardware.
BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})


def cpu_flags(cpuinfo: str) -> set[str]:
    """The feature flags of the first CPU listed in a /proc/cpuinfo text."""
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            return set(value.split())
    return set()


@lru_cache(maxsize=1)
def cpu_bf16_native(cpuinfo_path: str = "/proc/cpuinfo") -> bool:
    """Whether this CPU multiplies bf16 natively (False where /proc/cpuinfo is unreadable)."""
    try:
        text = Path(cpuinfo_path).read_text()
    except OSError:
        return False
    return bool(cpu_flags(text) & BF16_FLAGS)


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    """The torch dtype a `dtype=` option names on `device` (see the module docstring)."""
    if dtype == "default":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    if dtype == "auto":
        native = device.type == "cuda" or cpu_bf16_native()
        return torch.bfloat16 if native else torch.float32
    if dtype not in DTYPES:
        raise ModelSpecError(f"unknown dtype '{dtype}'", f"use one of {', '.join(CHOICES)}")
    return DTYPES[dtype]
