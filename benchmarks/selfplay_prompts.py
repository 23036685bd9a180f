"""Prompt tokens per self-play move, without running a model: the same seeded Perudo games, every
seat an `LLMAgent` whose reply is the scripted player's move, so the prompts are exactly what
self-play would send (rules, observations, history trimming, re-prompts) and only the moves differ
from a model's. Counted with the embedded model's tokenizer and chat template.

Also simulates the engine's prefix handling to count the prefill tokens a move still costs, the
part of the work that batching does not share: the real `PrefixCache` (16-token blocks, hits
extended to the token, at least 16 tokens) holding each prompt from its admission and each prompt
plus reply from its finish, and, with `--concurrency` above 1, the starts shared by the prompts of
one tick computed once (`engine_shared.plan_starts`), as the runner sends a tick's moves in one call.
Every `--invalid-every`-th move is replaced by an illegal bid, to include re-prompts.

Contention-free (no model forward passes, a few seconds of CPU), so it runs against any checkout:

    PYTHONPATH=src python benchmarks/selfplay_prompts.py --episodes 64
    python benchmarks/selfplay_prompts.py --episodes 16 --concurrency 16   # like benchmarks/selfplay.py
    python benchmarks/selfplay_prompts.py --env perudo-small-v0 --context-tokens 1024 --max-new-tokens 24

Last line: RESULT prompt_tokens_per_move=<mean> prefill_tokens_per_move=<mean> max_prompt_tokens=<max>
"""

from __future__ import annotations

import argparse

import torch

from selflab.envs.llm_agent import LLMAgent
from selflab.envs.registry import make, make_agent
from selflab.models.engine_prefix import PrefixCache
from selflab.models.engine_shared import plan_starts
from selflab.models.types import Completion


class _Tokenizer:
    """Just enough of a model for `LLMAgent` (it counts tokens with `model.tokenizer`)."""

    def __init__(self, tokenizer) -> None:
        self.tokenizer = tokenizer
        self.name = "tokenizer-only"


class _Engine:
    """The engine's prefix bookkeeping without a model: counts the prompt tokens it would compute."""

    def __init__(self) -> None:
        self.cache = PrefixCache(max_bytes=1 << 62, min_tokens=16)
        self.computed = 0

    def _put(self, ids: list[int], extends: int | None = None) -> int | None:
        return self.cache.put(ids, torch.zeros(1, 1, 1, len(ids), 1), extends=extends)

    def admit(self, prompts: list[list[int]]) -> list[int | None]:
        """One admission step: shared starts once, then each prompt from its longest cached start."""
        cached = [self._length(self.cache.lookup(p, count=False)) for p in prompts]
        for level in plan_starts(prompts, cached, self.cache.min_tokens):
            for group, _ in level:
                start = prompts[group.rows[0]][: group.length]
                self.computed += group.length - self._length(self.cache.lookup(start, limit=group.length))
                self._put(start)
        entries = []
        for p in prompts:
            hit = self.cache.lookup(p)
            self.computed += len(p) - self._length(hit)
            entries.append(self._put(p, extends=hit.entry if hit is not None else None))
        return entries

    def finish(self, ids: list[int], entry: int | None) -> None:
        self._put(ids, extends=entry)

    @staticmethod
    def _length(hit) -> int:
        return hit.length if hit is not None else 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--env", default="perudo-v0")
    ap.add_argument("--episodes", type=int, default=64)
    ap.add_argument("--players", type=int, default=2)
    ap.add_argument("--dice", type=int, default=2)
    ap.add_argument("--max-new-tokens", type=int, default=16)
    ap.add_argument("--context-tokens", type=int, default=2048)
    ap.add_argument("--invalid-every", type=int, default=0, help="every k-th move is illegal (0: none)")
    ap.add_argument("--concurrency", type=int, default=1, help="games played in lockstep, one call per tick")
    args = ap.parse_args()

    from transformers import AutoTokenizer

    from selflab.models.embedded import prepare

    tok = AutoTokenizer.from_pretrained(prepare())
    model = _Tokenizer(tok)
    engine = _Engine()
    counts = {"prompt": 0, "moves": 0, "reprompts": 0, "longest": 0}

    def start(ep: int) -> tuple:
        env = make(args.env, players=args.players, dice=args.dice)
        env.reset(seed=ep)
        scripted = [make_agent(args.env, "scripted", seed=ep * 1000 + s) for s in range(args.players)]
        agents = [
            LLMAgent(
                model,
                seed=ep * 1000 + s,
                max_new_tokens=args.max_new_tokens,
                context_tokens=args.context_tokens,
            )
            for s in range(args.players)
        ]
        for seat, agent in enumerate(agents):
            agent.begin(env.rules, seat)
        return env, scripted, agents

    queue = list(range(args.episodes))
    live: list[tuple] = []
    while queue or live:
        while queue and len(live) < max(1, args.concurrency):
            live.append(start(queue.pop(0)))
        tick = []  # (game, player, obs, prompt ids)
        for env, scripted, agents in live:
            player, obs = env.observe()
            request = agents[player].prepare(obs)
            chat = [m.model_dump() for m in request.messages]
            text = tok.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
            tick.append(((env, scripted, agents), player, obs, tok.encode(text, add_special_tokens=False)))
        entries = engine.admit([ids for *_, ids in tick])
        for ((env, scripted, agents), player, obs, ids), entry in zip(tick, entries, strict=True):
            counts["moves"] += 1
            bad = args.invalid_every and counts["moves"] % args.invalid_every == 0 and obs.error is None
            reply = "ACTION: bid 99 6" if bad else scripted[player].act(obs)
            reply = reply if reply.startswith("ACTION:") else f"ACTION: {reply}"
            out = tok.encode(reply, add_special_tokens=False)
            counts["prompt"] += len(ids)
            counts["longest"] = max(counts["longest"], len(ids))
            counts["reprompts"] += obs.error is not None
            engine.finish(ids + out[:-1], entry)  # the engine holds the tokens fed: all but the last
            env.step(agents[player].consume(Completion(text=reply)))
        live = [game for game in live if not game[0].done]
    moves = counts["moves"]
    print(
        f"{args.env} ({args.players} players x {args.dice} dice), {args.episodes} episodes, concurrency "
        f"{args.concurrency}, {moves} moves ({counts['reprompts']} re-prompts), "
        f"context_tokens={args.context_tokens}, max_new_tokens={args.max_new_tokens}"
    )
    print(
        f"RESULT prompt_tokens_per_move={counts['prompt'] / moves:.1f} "
        f"prefill_tokens_per_move={engine.computed / moves:.1f} max_prompt_tokens={counts['longest']}"
    )


if __name__ == "__main__":
    main()
