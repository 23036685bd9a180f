"""Padding-free SFT batches on CPU: a batch's examples run as one row, nothing padded.

TRL pads each SFT batch to its longest example, and every padded position costs a full forward and
backward. Its own `padding_free=True` flattens the batch into one row with restarting
`position_ids`, but TRL ties it to FlashAttention and refuses it together with `max_length`. On
transformers' other attention paths (sdpa, eager) the causal mask is built block-diagonally from
restarting `position_ids` (`masking_utils.find_packed_sequence_indices`), so examples cannot see
each other there either. Here TRL still tokenizes and truncates to `max_length` as usual; only the
collator changes: TRL's own padding-free one serves each batch where that costs less (the packed
row's attention grows with the square of its length), and only after the model has shown, on two
short sequences, that it keeps packed examples apart (a model that did not is left padded).

Measured on one batch of the main job's SFT data (8 examples, 590 tokens, 872 when padded; LoRA;
2-core Xeon, kernels limited to AVX2): forward and backward ~5.3 -> ~4.6 s, the same loss.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


def keeps_packed_sequences_apart(model: Any) -> bool:
    """True when `model`, given two sequences packed in one row with restarting `position_ids`,
    gives the second the same logits as when it runs alone (so packing changes nothing)."""
    import torch

    vocab = int(model.get_input_embeddings().weight.shape[0])
    generator = torch.Generator().manual_seed(0)
    first = torch.randint(0, vocab, (5,), generator=generator)
    second = torch.randint(0, vocab, (4,), generator=generator)
    packed = torch.cat([first, second])[None]
    positions = torch.cat([torch.arange(5), torch.arange(4)])[None]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            alone = model(input_ids=second[None], use_cache=False).logits[0]
            together = model(input_ids=packed, position_ids=positions, use_cache=False).logits[0, 5:]
    except Exception:  # noqa: BLE001 - a model that cannot take packed rows simply stays padded
        return False
    finally:
        model.train(was_training)
    return bool(torch.allclose(alone.float(), together.float(), atol=1e-4, rtol=1e-4))


def attention_pairs_per_token(config: Any) -> float:
    """How much one (query, key) pair of attention costs, in units of one token's pass through a
    layer's linear maps. Per layer a token multiplies h(2h + 2kv + 3i) weights (q, o; k, v; gate,
    up, down) and a pair 2h (q.k and the weighted v), so 2 / (2h + 2kv + 3i) (SmolLM2-135M: 1/3072)."""
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    hidden = int(text.hidden_size)
    heads = int(getattr(text, "num_attention_heads", 1) or 1)
    kv_dim = int(getattr(text, "num_key_value_heads", heads) or heads) * (hidden // heads)
    intermediate = int(getattr(text, "intermediate_size", 0) or 4 * hidden)
    return 2 / (2 * hidden + 2 * kv_dim + 3 * intermediate)


# A trained pair of attention costs about this many times its forward share of a token's linear
# maps: the backward recomputes the scores and makes three products where a LoRA layer's frozen
# weight makes one, and the CPU attention kernel runs below the matmul rate. 3 fits the measured
# profile (one packed batch of 590 tokens: attention 22% of the step).
TRAINED_PAIR_FACTOR = 3.0


@dataclass
class PackWhenCheaper:
    """TRL's collator, padding-free for the batches where that costs less: one row of S tokens
    attends over S^2 pairs (the block-diagonal mask is computed in full), B padded rows of the
    longest length L over B * L^2, so a batch of similar, long examples stays padded."""

    padded: Any
    packed: Any
    pair_cost: float

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        lengths = [len(e["input_ids"]) for e in examples]
        total, longest = sum(lengths), max(lengths)
        packed = total * (1 + self.pair_cost * total / 2)
        padded = len(lengths) * longest * (1 + self.pair_cost * longest / 2)
        return (self.packed if packed < padded else self.padded)(examples)


def use_padding_free_batches(trainer: Any) -> bool:
    """Let an SFTTrainer run its batches padding-free where cheaper, when it trains on CPU with
    TRL's plain collator and its model keeps packed sequences apart. Returns whether it does."""
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    collator = trainer.data_collator
    if (
        trainer.args.device.type != "cpu"
        or type(collator) is not DataCollatorForLanguageModeling
        or collator.padding_free
        or not keeps_packed_sequences_apart(trainer.model)
    ):
        return False
    packed = DataCollatorForLanguageModeling(
        pad_token_id=collator.pad_token_id, padding_free=True, return_tensors=collator.return_tensors
    )
    pair_cost = TRAINED_PAIR_FACTOR * attention_pairs_per_token(trainer.model.config)
    trainer.data_collator = PackWhenCheaper(collator, packed, pair_cost)
    return True
