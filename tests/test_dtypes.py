"""dtype=auto picks bf16 only where it is multiplied natively; the CPU default stays float32."""

import pytest
import torch

from selflab.errors import ModelSpecError
from selflab.models import dtypes

CPU = torch.device("cpu")


def test_cpu_flags_parses_first_flags_line():
    text = "processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_bf16\n\nprocessor\t: 1\nflags\t: fpu\n"
    assert dtypes.cpu_flags(text) == {"fpu", "avx2", "avx512f", "avx512_bf16"}
    assert dtypes.cpu_flags("no flags here") == set()


@pytest.mark.parametrize(
    ("flags", "native"),
    [("fpu avx2 fma", False), ("avx512f avx512_bf16", True), ("amx_bf16 amx_tile", True), ("avx512f", False)],
)
def test_auto_follows_cpu_flags(tmp_path, monkeypatch, flags, native):
    info = tmp_path / "cpuinfo"
    info.write_text(f"flags\t: {flags}\n")
    assert dtypes.cpu_bf16_native.__wrapped__(str(info)) is native
    monkeypatch.setattr(dtypes, "cpu_bf16_native", lambda: native)
    assert dtypes.resolve_dtype("auto", CPU) == (torch.bfloat16 if native else torch.float32)


def test_unreadable_cpuinfo_means_not_native(tmp_path):
    assert dtypes.cpu_bf16_native.__wrapped__(str(tmp_path / "missing")) is False


def test_default_and_explicit(monkeypatch):
    monkeypatch.setattr(dtypes, "cpu_bf16_native", lambda: True)
    assert dtypes.resolve_dtype("default", CPU) == torch.float32  # the CPU default never changes
    assert dtypes.resolve_dtype("default", torch.device("cuda")) == torch.bfloat16
    assert dtypes.resolve_dtype("auto", torch.device("cuda")) == torch.bfloat16
    assert dtypes.resolve_dtype("bfloat16", CPU) == torch.bfloat16
    with pytest.raises(ModelSpecError, match="unknown dtype"):
        dtypes.resolve_dtype("int3", CPU)


def test_hf_model_default_is_float32_on_cpu(tmp_path):
    from selflab.models.hf import HFModel
    from selflab.models.testing import tiny_llama

    assert HFModel(tiny_llama(tmp_path / "m"), device="cpu").dtype == torch.float32
