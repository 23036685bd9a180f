"""Per-row next-token choice for a batch in which every row has its own sampling settings.

Each sampled row draws exactly one uniform number per step from its own `torch.Generator`, and the
token is picked by inverse CDF over that row's (filtered) distribution. So a seeded request gets the
same sample whatever else shares its batch: its random stream is private and consumed at a fixed rate.
"""

from __future__ import annotations

import torch

from selflab.models.types import SamplingParams

# Top-p first looks at this many most likely tokens; only rows whose nucleus is wider get a full sort.
_NUCLEUS_WINDOW = 256


def _uniforms(generators: list[torch.Generator]) -> torch.Tensor:
    """One U[0, 1) draw per row, each from that row's own generator (float64 to keep the CDF search exact)."""
    return torch.cat([torch.rand(1, generator=g, dtype=torch.float64) for g in generators])


def _pick(probs: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Inverse-CDF sampling: the first index whose cumulative probability exceeds u * total.
    Scaling by the row total makes float rounding in the cumsum harmless (never picks a zero-prob tail)."""
    cdf = probs.double().cumsum(dim=-1)
    target = (u.to(cdf.device) * cdf[:, -1]).unsqueeze(1)
    idx = torch.searchsorted(cdf, target, right=True).squeeze(1)
    return idx.clamp_(max=probs.shape[-1] - 1)


def _filtered_sorted(scaled: torch.Tensor, top_k: int, top_p: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Candidates of one row after top-k and top-p, as (probabilities, token ids) sorted by probability.
    Exact: the window of the most likely tokens is widened to the full vocabulary when the nucleus needs it."""
    vocab = scaled.shape[-1]
    k = top_k if top_k > 0 else vocab
    window = min(k, vocab) if top_p >= 1.0 else min(k, _NUCLEUS_WINDOW, vocab)
    values, ids = torch.topk(scaled, window)
    probs_all = torch.softmax(scaled, dim=-1) if top_k == 0 else None
    if top_p < 1.0:
        if top_k > 0:
            probs = torch.softmax(values, dim=-1)
            if window < min(k, vocab):  # top-k wider than the window: renormalise over the true top-k set
                values, ids = torch.topk(scaled, min(k, vocab))
                probs = torch.softmax(values, dim=-1)
        else:
            probs = probs_all[ids]
            if float(probs.sum()) < top_p and window < vocab:
                values, ids = torch.sort(scaled, descending=True)
                probs = probs_all[ids]
        cum = probs.cumsum(dim=-1)
        keep = (
            cum - probs
        ) < top_p  # keep tokens until the mass before them reaches top_p (first always kept)
        keep[0] = True
        return probs[keep], ids[keep]
    return torch.softmax(values, dim=-1), ids


def _nucleus_rows(
    scaled: torch.Tensor, top_p: torch.Tensor, u: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-p sampling for many rows at once (top_k 0): the same arithmetic as `_filtered_sorted` +
    `_pick` row by row, batched over the rows whose nucleus fits in the `_NUCLEUS_WINDOW` most
    likely tokens. Returns (tokens, fits); rows with `fits` False must be redone one by one."""
    probs_all = torch.softmax(scaled, dim=-1)
    window = min(_NUCLEUS_WINDOW, scaled.shape[-1])
    _, ids = torch.topk(scaled, window)
    probs = probs_all.gather(1, ids)
    fits = (probs.sum(dim=-1) >= top_p) | (window >= scaled.shape[-1])
    cum = probs.cumsum(dim=-1)
    keep = (cum - probs) < top_p.unsqueeze(1)  # a prefix of the sorted tokens (first always kept)
    keep[:, 0] = True
    kept = probs.masked_fill(~keep, 0.0)
    idx = torch.minimum(_pick(kept, u), keep.sum(dim=-1) - 1)  # never past the nucleus
    return ids.gather(1, idx.unsqueeze(1)).squeeze(1), fits


def choose_tokens(
    logits: torch.Tensor,
    params: list[SamplingParams | None],
    generators: list[torch.Generator | None],
    want_logprobs: bool,
    banned: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Next token for each row of `logits` (rows, vocab). Rows with `params[i] is None` are idle
    (their token is irrelevant). `banned` (bool, same shape) removes the tokens a row's constraint
    does not allow; every filter and sampler then works on the masked distribution. Returns (token
    ids, log-probabilities of the chosen tokens under the unmodified model distribution, or None
    when no row asked for them). May modify `logits` in place."""
    logits = logits.float()
    logsoftmax = torch.log_softmax(logits, dim=-1) if want_logprobs else None
    if banned is not None:
        logits.masked_fill_(banned.to(logits.device, non_blocking=True), float("-inf"))
    tokens = logits.argmax(dim=-1)
    sampled = [i for i, p in enumerate(params) if p is not None and not p.greedy]
    if sampled:
        plain = [i for i in sampled if params[i].top_k == 0 and params[i].top_p >= 1.0]
        filtered = [i for i in sampled if i not in set(plain)]
        if plain:
            rows = torch.tensor(plain, device=logits.device)
            temps = torch.tensor(
                [params[i].temperature for i in plain], dtype=logits.dtype, device=logits.device
            )
            temps = temps.unsqueeze(1)
            probs = torch.softmax(logits[rows] / temps, dim=-1)
            u = _uniforms([generators[i] for i in plain])
            tokens[rows] = _pick(probs, u)
        # Top-p alone (the usual sampled request): all such rows at once, whatever the batch.
        nucleus = [i for i in filtered if params[i].top_k == 0]
        if nucleus:
            rows = torch.tensor(nucleus, device=logits.device)
            temps = torch.tensor([params[i].temperature for i in nucleus], dtype=logits.dtype)
            top_p = torch.tensor([params[i].top_p for i in nucleus], dtype=logits.dtype)
            u = _uniforms([generators[i] for i in nucleus])
            scaled = logits[rows] / temps.unsqueeze(1).to(logits.device)
            picked, fits = _nucleus_rows(scaled, top_p.to(logits.device), u)
            tokens[rows] = picked
            for j in (~fits).nonzero().flatten().tolist():  # nucleus wider than the window: exact
                probs, ids = _filtered_sorted(scaled[j], 0, params[nucleus[j]].top_p)
                tokens[nucleus[j]] = ids[_pick(probs.unsqueeze(0), u[j : j + 1])[0]]
        for i in filtered:
            p = params[i]
            if p.top_k == 0:
                continue
            probs, ids = _filtered_sorted(logits[i] / p.temperature, p.top_k, p.top_p)
            u = _uniforms([generators[i]])
            tokens[i] = ids[_pick(probs.unsqueeze(0), u)[0]]
    logprobs = None
    if logsoftmax is not None:
        logprobs = logsoftmax.gather(1, tokens.unsqueeze(1)).squeeze(1)
    return tokens, logprobs
