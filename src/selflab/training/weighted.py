"""Weighted SFT: per-example weights in the loss (SPAG-style outcome or turn-decayed weighting).

TRL's SFTTrainer keeps only `input_ids` and `labels` after its preprocessing, so a `weight`
column never reaches the loss. When any row's weight differs from 1, `train("sft", ...)` uses
this subclass instead: rows are tokenized here (chat template, loss on the completion only, as
TRL's prompt-completion path does), the collator carries a `weight` per row, and `compute_loss`
is the token-mean negative log-likelihood with each token scaled by its row's weight:

    loss = sum_i w_i * sum_t nll_it / sum_i n_i

over every row of one optimiser step (all gradient-accumulation micro-batches: the Trainer's
`num_items_in_batch`). With every weight 1 this is TRL's own token-mean loss, and the unweighted path is left untouched
(so runs without weights are unchanged).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from trl import SFTTrainer
from trl.trainer.sft_trainer import DataCollatorForLanguageModeling


def tokenize_weighted(rows: list[dict[str, Any]], tokenizer: Any, max_length: int) -> list[dict[str, Any]]:
    """{input_ids, labels (-100 on the prompt), weight} per prompt-completion row; rows whose
    completion is cut off entirely by `max_length` are dropped."""
    out = []
    for r in rows:
        prompt_ids = tokenizer.apply_chat_template(r["prompt"], tokenize=True, add_generation_prompt=True)
        full = tokenizer.apply_chat_template(r["prompt"] + r["completion"], tokenize=True)
        prompt_ids = list(getattr(prompt_ids, "input_ids", prompt_ids))
        full = list(getattr(full, "input_ids", full))
        n = 0
        while n < min(len(prompt_ids), len(full)) and prompt_ids[n] == full[n]:
            n += 1
        full = full[:max_length]
        labels = [-100] * min(n, len(full)) + full[n:]
        if all(x == -100 for x in labels):
            continue
        out.append({"input_ids": full, "labels": labels, "weight": float(r.get("weight", 1.0))})
    return out


@dataclass
class WeightedCollator(DataCollatorForLanguageModeling):
    """TRL's padding collator, plus a `weight` tensor (one per row)."""

    def torch_call(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        import torch

        out = super().torch_call(examples)
        out["weight"] = torch.tensor([float(e.get("weight", 1.0)) for e in examples], dtype=torch.float32)
        return out


class WeightedSFTTrainer(SFTTrainer):
    """SFTTrainer whose loss honours per-example weights (see the module docstring)."""

    def _set_signature_columns_if_needed(self) -> None:
        if self._signature_columns is None:
            self._signature_columns = ["input_ids", "labels", "weight"]

    def compute_loss(
        self, model: Any, inputs: dict[str, Any], return_outputs: bool = False, num_items_in_batch: Any = None
    ) -> Any:
        import torch
        import torch.nn.functional as F  # noqa: N812

        weight = inputs.pop("weight")
        labels = inputs.pop("labels")
        outputs = model(
            input_ids=inputs["input_ids"], attention_mask=inputs.get("attention_mask"), use_cache=False
        )
        logits = outputs.logits[:, :-1, :].float()
        target = labels[:, 1:]
        nll = F.cross_entropy(logits.transpose(1, 2), target, ignore_index=-100, reduction="none")
        mask = (target != -100).float()
        total = (nll * mask * weight.to(nll.dtype)[:, None]).sum()
        if num_items_in_batch is None:
            return_loss = total / torch.clamp(mask.sum(), min=1.0)
        else:
            # The Trainer passes the tokens of the whole optimiser step (all accumulation steps) and
            # then does NOT divide by the accumulation steps: a per-micro-batch mean here would sum
            # them, i.e. multiply the loss and gradient by `grad_accum`.
            n = torch.as_tensor(num_items_in_batch, dtype=total.dtype, device=total.device)
            return_loss = total / torch.clamp(n, min=1.0)
            if self.args.average_tokens_across_devices and self.accelerator.num_processes > 1:
                return_loss = return_loss * self.accelerator.num_processes  # the count is global
        return (return_loss, outputs) if return_outputs else return_loss


def weighted_sft_trainer(model: Any, args: Any, rows: list[dict[str, Any]], tokenizer: Any, **kw: Any) -> Any:
    """A WeightedSFTTrainer over `rows` (already in the conversational prompt-completion format)."""
    from datasets import Dataset

    data = Dataset.from_list(tokenize_weighted(rows, tokenizer, args.max_length or 1024))
    args.remove_unused_columns = False
    args.dataset_kwargs = {**(args.dataset_kwargs or {}), "skip_prepare_dataset": True}
    collator = WeightedCollator(pad_token_id=tokenizer.pad_token_id)
    return WeightedSFTTrainer(
        model=model, args=args, train_dataset=data, processing_class=tokenizer, data_collator=collator, **kw
    )
