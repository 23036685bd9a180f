"""Prompt tokens per self-play move, without running a model: the same seeded Perudo games, every
seat an `LLMAgent` whose reply is the scripted player's move, so the prompts are exactly what
self-play would send (rules, observations, history trimming, re-prompts) and only the moves differ
from a model's. Counted with the embedded model's tokenizer and chat template.

Also simulates the engine's prefix cache (`selflab.models.engine_prefix`: longest block-aligned
prefix, 16-token blocks, at least 32 tokens, of any earlier prompt plus its reply) to count the
prefill tokens a move still costs, the part of the work that batching does not share. Every
`--invalid-every`-th move is replaced by an illegal bid, to include re-prompts.

Contention-free (no model forward passes, a few seconds of CPU), so it runs against any checkout:

    PYTHONPATH=src python benchmarks/selfplay_prompts.py --episodes 64
    python benchmarks/selfplay_prompts.py --env perudo-small-v0 --context-tokens 1024 --max-new-tokens 24

Last line: RESULT prompt_tokens_per_move=<mean> prefill_tokens_per_move=<mean> max_prompt_tokens=<max>
"""

from __future__ import annotations

import argparse

from selflab.envs.llm_agent import LLMAgent
from selflab.envs.registry import make, make_agent
from selflab.models.types import Completion

BLOCK, MIN_TOKENS = 16, 32


class _Tokenizer:
    """Just enough of a model for `LLMAgent` (it counts tokens with `model.tokenizer`)."""

    def __init__(self, tokenizer) -> None:
        self.tokenizer = tokenizer
        self.name = "tokenizer-only"


def _cached(ids: list[int], store: set[tuple[int, ...]]) -> int:
    """Longest block-aligned prefix of `ids` (leaving one token) present in `store`."""
    best = 0
    for length in range(BLOCK, len(ids), BLOCK):
        if tuple(ids[:length]) not in store:
            break
        best = length
    return best if best >= MIN_TOKENS else 0


def _remember(ids: list[int], store: set[tuple[int, ...]]) -> None:
    for length in range(BLOCK, len(ids) + 1, BLOCK):
        store.add(tuple(ids[:length]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--env", default="perudo-v0")
    ap.add_argument("--episodes", type=int, default=64)
    ap.add_argument("--players", type=int, default=2)
    ap.add_argument("--dice", type=int, default=2)
    ap.add_argument("--max-new-tokens", type=int, default=16)
    ap.add_argument("--context-tokens", type=int, default=2048)
    ap.add_argument("--invalid-every", type=int, default=0, help="every k-th move is illegal (0: none)")
    args = ap.parse_args()

    from transformers import AutoTokenizer

    from selflab.models.embedded import prepare

    tok = AutoTokenizer.from_pretrained(prepare())
    model = _Tokenizer(tok)
    prompt_tokens, prefill, moves, reprompts, longest = 0, 0, 0, 0, 0
    store: set[tuple[int, ...]] = set()
    for ep in range(args.episodes):
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
        while not env.done:
            player, obs = env.observe()
            request = agents[player].prepare(obs)
            chat = [m.model_dump() for m in request.messages]
            ids = tok.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
            ids = tok.encode(ids, add_special_tokens=False)
            moves += 1
            bad = args.invalid_every and moves % args.invalid_every == 0 and obs.error is None
            reply = "ACTION: bid 99 6" if bad else scripted[player].act(obs)
            reply = reply if reply.startswith("ACTION:") else f"ACTION: {reply}"
            out = tok.encode(reply, add_special_tokens=False)
            prompt_tokens += len(ids)
            prefill += len(ids) - _cached(ids, store)
            longest = max(longest, len(ids))
            reprompts += obs.error is not None
            _remember(ids + out, store)
            env.step(agents[player].consume(Completion(text=reply)))
    print(
        f"{args.env} ({args.players} players x {args.dice} dice), {args.episodes} episodes, {moves} moves "
        f"({reprompts} re-prompts), context_tokens={args.context_tokens}, max_new_tokens={args.max_new_tokens}"
    )
    print(
        f"RESULT prompt_tokens_per_move={prompt_tokens / moves:.1f} prefill_tokens_per_move={prefill / moves:.1f} "
        f"max_prompt_tokens={longest}"
    )


if __name__ == "__main__":
    main()
