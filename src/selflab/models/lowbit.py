"""The low-bit matmul kernels PyTorch ships for CPUs: whether they exist, where they pay, and the
int4 weight packing. Shared by the layer wrappers (`selflab.models.quant`) and the lean decode path
(`selflab.models.engine_decode`); the measurements behind the row limits are in `quant`'s docstring.
"""

from __future__ import annotations

import torch

# Rows (tokens) up to which a matmul uses the int8 weights; above it the dense layer is faster.
INT8_MAX_ROWS = 4
# Rows up to which int4 beats the dense layer, by the dense layer's dtype (the table in `selflab.models.quant`).
INT4_MAX_ROWS = {torch.bfloat16: 16, torch.float32: 32}
INT4_GROUP_SIZES = (32, 64, 128)
INT4_DEFAULT_GROUP = 32


def int8_available() -> bool:
    return hasattr(torch.ops.aten, "_weight_int8pack_mm")


def int4_available() -> bool:
    ops = torch.ops.aten
    return hasattr(ops, "_convert_weight_to_int4pack_for_cpu") and hasattr(ops, "_weight_int4pack_mm_for_cpu")


def int8_channel_scales(weight: torch.Tensor) -> torch.Tensor:
    """Symmetric per-output-channel int8 scales of a (out, in) weight (fp32)."""
    return weight.detach().float().abs().amax(dim=1).clamp(min=1e-12) / 127.0


def pack_int8(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(int8 codes, bf16 scales) of a weight, as `aten._weight_int8pack_mm` reads them."""
    scale = int8_channel_scales(weight)
    codes = (weight.detach().float() / scale[:, None]).round().clamp(-127, 127).to(torch.int8)
    return codes, scale.to(torch.bfloat16)


def int4_group_of(option: str) -> int:
    """The group size an int4 option or format names: `int4` -> the default, `int4-g64` -> 64."""
    return int(option.partition("-g")[2] or INT4_DEFAULT_GROUP)


def int4_group_for(in_features: int, group_size: int) -> int | None:
    """The largest supported group size <= `group_size` that divides `in_features` (576 inputs
    take groups of 64 when 128 is asked for), or None when none does."""
    for g in (256, 128, 64, 32):
        if g <= group_size and in_features % g == 0:
            return g
    return None


def pack_int4(weight: torch.Tensor, group_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Asymmetric 4-bit codes per group of `group_size` inputs, packed for the CPU kernel.

    Returns (packed uint8 weight, bf16 scales-and-zeros of shape (in/group, out_padded, 2)). The
    kernel computes w = (q - 8) * scale + zero; scale and zero are rounded to bf16 *before* the
    codes are chosen, so the codes are the nearest ones for the parameters the kernel will read.
    Output rows are padded with zeros to a multiple of 16 (the kernel's block); callers slice.
    """
    w = weight.detach().float()
    rows, cols = w.shape
    padded = -(-rows // 16) * 16
    if padded != rows:
        w = torch.cat([w, w.new_zeros(padded - rows, cols)])
    groups = w.reshape(padded, cols // group_size, group_size)
    lo, hi = groups.amin(-1), groups.amax(-1)
    scale = ((hi - lo) / 15).clamp(min=1e-6).to(torch.bfloat16)
    zero = (lo + 8 * scale.float()).to(torch.bfloat16)
    base = zero.float() - 8 * scale.float()  # the value of code 0
    codes = ((groups - base[..., None]) / scale.float()[..., None]).round().clamp(0, 15)
    packed = torch.ops.aten._convert_weight_to_int4pack_for_cpu(
        codes.to(torch.int32).reshape(padded, cols), 1
    )
    scale_zero = torch.stack([scale, zero], dim=-1).transpose(0, 1).contiguous()
    return packed, scale_zero


def unpack_int4_reference(weight: torch.Tensor, group_size: int) -> torch.Tensor:
    """The float weight the int4 kernel multiplies by (for tests and error measurements)."""
    rows, cols = weight.shape
    eye = torch.eye(cols, dtype=torch.bfloat16)
    packed, scale_zero = pack_int4(weight, group_size)
    # W^T = I @ W^T: the kernel applied to the identity returns the dequantised weight, transposed.
    out = torch.ops.aten._weight_int4pack_mm_for_cpu(eye, packed, group_size, scale_zero)
    return out[:, :rows].T.float()
