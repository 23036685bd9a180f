"""The batching engine's KV cache: one preallocated tensor for all layers, rows left-padded.

Why not transformers' `DynamicCache`: it concatenates every layer's keys and values on every decode
step (a full copy of the cache per token), and it cannot drop or add rows in the middle of a batch.
Here the cache is one tensor `(layers, 2, rows, kv_heads, capacity, head_dim)`; a forward pass writes
its new columns in place and attention reads views up to the current length. Rows are aligned on the
right (each row's newest token is in column `length - 1`); `valid` marks which columns of each row
hold real tokens, so padding can sit anywhere (before a prompt, or between a shared prefix and the
rest of a prompt). Position ids come from the count of valid columns, so padding never shifts RoPE.
"""

from __future__ import annotations

import inspect

import torch
from transformers.cache_utils import Cache, DynamicLayer

# Extra columns allocated at a time, so growing the cache is rare.
_GROW = 128


class KVBuffer:
    """Keys/values of a set of rows for every layer, plus which columns are real tokens."""

    def __init__(self, num_layers: int, rows: int, capacity: int, device: torch.device) -> None:
        self.num_layers = num_layers
        self.rows = rows
        self.capacity = capacity
        self.device = device
        self.data: torch.Tensor | None = None  # allocated on the first write, when head shapes are known
        self.valid = torch.zeros(rows, capacity, dtype=torch.bool, device=device)
        self.length = 0

    def allocate(self, kv_heads: int, head_dim: int, dtype: torch.dtype) -> None:
        shape = (self.num_layers, 2, self.rows, kv_heads, self.capacity, head_dim)
        self.data = torch.zeros(shape, dtype=dtype, device=self.device)

    def ensure_capacity(self, extra: int) -> None:
        """Make room for `extra` more columns (reallocating, rarely)."""
        need = self.length + extra
        if need <= self.capacity:
            return
        new_cap = need + _GROW
        if self.data is not None:
            grown = self.data.new_zeros(self.data.shape[:4] + (new_cap,) + self.data.shape[5:])
            grown[..., : self.length, :] = self.data[..., : self.length, :]
            self.data = grown
        valid = torch.zeros(self.rows, new_cap, dtype=torch.bool, device=self.device)
        valid[:, : self.length] = self.valid[:, : self.length]
        self.valid = valid
        self.capacity = new_cap

    def writer(self) -> _WriteCache:
        """A transformers `Cache` whose layers write new keys/values at column `length`."""
        return _WriteCache(self)

    def first_used_column(self, rows: torch.Tensor) -> int:
        """Leftmost column that holds a real token for any of `rows` (columns before it can be trimmed)."""
        used = self.valid[rows, : self.length].any(dim=0).nonzero()
        return int(used[0]) if used.numel() else self.length


class _BufferLayer(DynamicLayer):
    """One layer's view of a `KVBuffer`; `update` writes in place and returns views (no copies)."""

    def __init__(self, buffer: KVBuffer, index: int) -> None:
        super().__init__()
        self.buffer = buffer
        self.index = index
        self.is_initialized = True

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        buf = self.buffer
        if buf.data is None:
            buf.allocate(key_states.shape[1], key_states.shape[3], key_states.dtype)
        start = buf.length
        end = start + key_states.shape[2]
        layer = buf.data[self.index]
        layer[0, :, :, start:end] = key_states
        layer[1, :, :, start:end] = value_states
        return layer[0, :, :, :end], layer[1, :, :, :end]

    def get_seq_length(self) -> int:
        return self.buffer.length

    def get_mask_sizes(self, query_length: int) -> tuple[int, int]:
        return self.buffer.length + query_length, 0


class _WriteCache(Cache):
    """Adapter so a transformers model writes into a `KVBuffer`. The engine advances `length` itself
    after the forward pass (every layer writes at the same start column)."""

    def __init__(self, buffer: KVBuffer) -> None:
        super().__init__(layers=[_BufferLayer(buffer, i) for i in range(buffer.num_layers)])


def cache_kwargs(model: torch.nn.Module, cache: Cache) -> dict[str, Cache]:
    """The keyword that hands `cache` to `model.forward`: `cache` from transformers 5.2x on, where
    `past_key_values` is deprecated (removal announced for 5.40), `past_key_values` before. Read from
    the forward signature, so both sides of the rename work without version checks."""
    forward = type(model).forward
    names = _FORWARD_PARAMS.get(forward)
    if names is None:
        names = _FORWARD_PARAMS[forward] = frozenset(inspect.signature(forward).parameters)
    return {"cache" if "cache" in names else "past_key_values": cache}


_FORWARD_PARAMS: dict[object, frozenset[str]] = {}


def merge(parts: list[tuple[KVBuffer, torch.Tensor]], headroom: int) -> KVBuffer:
    """A new buffer holding the selected rows of each part, right-aligned to a common length, with
    leading all-padding columns trimmed and `headroom` free columns. One copy per part."""
    spans = []
    for buf, rows in parts:
        start = buf.first_used_column(rows)
        spans.append((buf, rows, start, buf.length - start))
    length = max(span for *_, span in spans)
    total_rows = sum(len(rows) for _, rows, *_ in spans)
    ref = next(buf for buf, *_ in spans if buf.data is not None)
    out = KVBuffer(ref.num_layers, total_rows, length + headroom, ref.device)
    out.data = ref.data.new_zeros(
        ref.data.shape[:2] + (total_rows,) + ref.data.shape[3:4] + (out.capacity,) + ref.data.shape[5:]
    )
    out.length = length
    r0 = 0
    for buf, rows, start, span in spans:
        r1 = r0 + len(rows)
        if span > 0:
            out.data[:, :, r0:r1, :, length - span : length] = buf.data[:, :, rows, :, start : buf.length]
            out.valid[r0:r1, length - span : length] = buf.valid[rows, start : buf.length]
        r0 = r1
    return out
