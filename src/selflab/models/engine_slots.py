"""The running batch's KV cache: one slot per row, each row's tokens left-aligned from column 0.

Why not the prefill layout (`engine_cache.KVBuffer`, rows right-aligned to a common length): in a
continuously batched decode, rows come and go every few steps. Right-aligned rows must be re-aligned
into a fresh buffer whenever the set of rows changes (a copy of the whole cache, ~0.1 s per rebuild
for the embedded model at 64 rows), and finished rows had to keep running as padding until enough
of them piled up. Here:

- row i lives in slot i; its `lengths[i]` tokens sit in columns [0, lengths[i]), so its next token
  goes to column `lengths[i]`, which is also its position id (no padding inside a row);
- a finished row is removed at once by moving the last row into its slot (one row's copy);
- new rows (prefilled elsewhere) are copied into the next free slots;
- a decode step writes each row's new key/value at that row's own column (one scatter per layer)
  and attends to columns [0, longest row + 1), masking each row at its own length.

Capacity (slots and columns) grows by reallocating, rarely.
"""

from __future__ import annotations

import torch
from transformers.cache_utils import Cache, DynamicLayer

# Extra columns allocated at a time, so growing the cache is rare.
_GROW_COLUMNS = 128


class SlotCache:
    """Keys/values of the running batch, `(layers, 2, slots, kv_heads, columns, head_dim)`."""

    def __init__(self, num_layers: int, device: torch.device) -> None:
        self.num_layers = num_layers
        self.device = device
        self.data: torch.Tensor | None = None
        self.lengths: list[int] = []  # tokens cached per row; row i is slot i
        self.reallocations = 0

    @property
    def rows(self) -> int:
        return len(self.lengths)

    def _reserve(self, rows: int, columns: int, like: torch.Tensor, max_rows: int) -> None:
        """Make room for `rows` slots of `columns` columns, copying what is cached when growing.
        Slots grow by doubling (up to `max_rows`), columns by `_GROW_COLUMNS` beyond the need.
        `like`: a (layers, 2, kv_heads, length, head_dim) tensor giving head shapes and dtype."""
        have_rows = self.data.shape[2] if self.data is not None else 0
        have_cols = self.data.shape[4] if self.data is not None else 0
        if rows <= have_rows and columns <= have_cols:
            return
        new_rows = have_rows if rows <= have_rows else min(max(rows, 2 * have_rows), max(rows, max_rows))
        new_cols = have_cols if columns <= have_cols else columns + _GROW_COLUMNS
        layers, two, kv_heads, _, head_dim = like.shape
        # Masked columns still meet the values in attention (0 * NaN is NaN), so every column of a
        # live row's slot must hold a finite number: the rows kept here are copied and their new
        # columns zeroed, rows added later get their tails zeroed (`add`). Zeroing the whole
        # buffer instead took 18% of the engine's admissions in concurrent self-play (a 64-row
        # buffer is ~1.4 GB for the embedded model, allocated anew for each call).
        grown = _uninitialised(like, (layers, two, new_rows, kv_heads, new_cols, head_dim))
        if self.data is not None and self.rows:
            used = max(self.lengths)
            grown[:, :, : self.rows, :, :used] = self.data[:, :, : self.rows, :, :used]
            grown[:, :, : self.rows, :, used:].zero_()
        self.data = grown
        self.reallocations += 1

    def add(self, rows: list[list[torch.Tensor]], max_rows: int) -> None:
        """Append rows; a row is a list of pieces (layers, 2, kv_heads, n, head_dim) whose tokens
        follow each other. `max_rows`: how many rows the batch may reach (bounds slot growth)."""
        if not rows:
            return
        sizes = [sum(piece.shape[3] for piece in pieces) for pieces in rows]
        longest = max(sizes + self.lengths) + 1  # room for the next token
        self._reserve(self.rows + len(rows), longest, rows[0][0], max_rows)
        assert self.data is not None
        for i, pieces in enumerate(rows):
            col = 0
            for piece in pieces:
                n = piece.shape[3]
                self.data[:, :, self.rows + i, :, col : col + n] = piece
                col += n
            self.data[:, :, self.rows + i, :, col:].zero_()  # a slot may hold anything (`_reserve`)
        self.lengths.extend(sizes)

    def remove(self, dead: list[int]) -> list[int]:
        """Drop the rows in `dead`; each hole below the new row count is filled by moving the last
        live row into it (one row's copy). Returns `order`: new row i is old row `order[i]`."""
        order = list(range(self.rows))
        gone = set(dead)
        keep = self.rows - len(gone)
        movers = [r for r in range(keep, self.rows) if r not in gone]
        holes = [r for r in sorted(gone) if r < keep]
        for hole, mover in zip(holes, movers, strict=True):
            n = self.lengths[mover]
            if self.data is not None and n:
                self.data[:, :, hole, :, :n] = self.data[:, :, mover, :, :n]
            self.lengths[hole] = n
            order[hole] = mover
        del self.lengths[keep:]
        return order[:keep]

    def row(self, r: int) -> torch.Tensor:
        """Row r's keys/values (a view: copy it before the slot is reused)."""
        assert self.data is not None
        return self.data[:, :, r, :, : self.lengths[r]]

    def decode_writer(self, positions: torch.Tensor) -> _SlotWriteCache:
        """A transformers `Cache` for one decode step: row i's new key/value goes to column
        `positions[i]` (== lengths[i]); attention sees columns [0, longest + 1)."""
        return _SlotWriteCache(self, positions)

    def ensure_columns(self, tokens: int = 1) -> None:
        """Room for `tokens` more tokens in every row."""
        if self.data is not None and self.rows and max(self.lengths) + tokens > self.data.shape[4]:
            self._reserve(self.rows, max(self.lengths) + tokens, self.data[:, :, 0], self.data.shape[2])


def _uninitialised(like: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """A buffer of `like`'s dtype and device whose contents are not set (tests fill it with NaN)."""
    return like.new_empty(shape)


class _SlotLayer(DynamicLayer):
    """One layer's view of a `SlotCache` during a decode step; writes in place, returns views."""

    def __init__(self, cache: SlotCache, index: int, rows: torch.Tensor, columns: torch.Tensor, span: int):
        super().__init__()
        self.cache = cache
        self.index = index
        self.rows_idx = rows
        self.columns = columns
        self.span = span
        self.is_initialized = True

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        data = self.cache.data
        assert data is not None
        n = key_states.shape[0]
        keys = data[self.index, 0, :n]
        values = data[self.index, 1, :n]
        # (rows, kv_heads, 1, head_dim) -> row i's column columns[i]
        keys[self.rows_idx, :, self.columns] = key_states[:, :, 0]
        values[self.rows_idx, :, self.columns] = value_states[:, :, 0]
        return keys[:, :, : self.span], values[:, :, : self.span]

    def get_seq_length(self) -> int:
        return self.span - 1

    def get_mask_sizes(self, query_length: int) -> tuple[int, int]:
        return self.span, 0


class _SlotWriteCache(Cache):
    def __init__(self, cache: SlotCache, positions: torch.Tensor) -> None:
        span = max(cache.lengths) + 1
        rows = torch.arange(cache.rows, device=positions.device)
        super().__init__(
            layers=[_SlotLayer(cache, i, rows, positions, span) for i in range(cache.num_layers)]
        )
