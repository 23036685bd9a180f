"""One-move format-following of a model in every game, with and without the move grammar.

Why: a whole LLM episode costs dozens of calls; the invalid-move rate only needs single moves. This
collects `--per-game` seeded mid-game observations per game (scripted seats play a seeded number
of turns first), asks the model for ONE move on each, in one batched call per mode, and plays
each reply on a copy of the env: parse error, rule violation, or applied. Same observations, same
seeds, both modes in one run.

    python benchmarks/game_moves.py --model "smollm2-135m?dtype=bfloat16" --per-game 6
"""

from __future__ import annotations

import argparse
import copy
import random
import time

from selflab.envs.baselines import VARIANTS
from selflab.envs.llm_agent import LLMAgent
from selflab.envs.registry import make, make_agent
from selflab.models import load_model


def observations(env_id: str, n: int, seed: int) -> list[tuple[object, object]]:
    """(env, observation) at a seeded turn of a scripted episode, n of them."""
    out = []
    for i in range(n):
        rng = random.Random(seed * 1000 + i)
        env = make(env_id)
        env.reset(seed=seed + i)
        agents = [make_agent(env_id, "scripted", seed=seed + i + k) for k in range(env.num_players)]
        for _ in range(rng.randrange(0, 6)):
            player, obs = env.observe()
            env.step(agents[player].act(obs))
            if env.done:
                env.reset(seed=seed + i)
                break
        out.append((env, env.observe()[1]))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="smollm2-135m?dtype=bfloat16")
    ap.add_argument("--per-game", type=int, default=6)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-new-tokens", type=int, default=48)
    args = ap.parse_args()
    model = load_model(args.model)
    cases = [
        (g, env, obs) for g, v in VARIANTS.items() for env, obs in observations(v, args.per_game, args.seed)
    ]
    print(f"{len(cases)} observations over {len(VARIANTS)} games; model {args.model}")
    results: dict[tuple[str, bool], list[str]] = {}
    for constrained in (True, False):
        agents, requests = [], []
        for i, (_, env, obs) in enumerate(cases):
            agent = LLMAgent(model, env.rules, seed=args.seed + i, constrained=constrained,
                             max_new_tokens=args.max_new_tokens, context_tokens=1024)  # fmt: skip
            agent.begin(env.rules, obs.player)
            agents.append(agent)
            requests.append(agent.prepare(obs))
        start = time.perf_counter()
        completions = model.generate(requests)
        wall = time.perf_counter() - start
        for (game, env, _), agent, completion in zip(cases, agents, completions, strict=True):
            action = agent.consume(completion)
            error = copy.deepcopy(env).step(action).error
            results.setdefault((game, constrained), []).append("ok" if error is None else error.kind)
        print(f"grammar {'on' if constrained else 'off'}: one batched call, {wall:.0f} s")
    print("| game (variant) | grammar | moves | parse errors | rule violations | applied |")
    print("|---|---|---|---|---|---|")
    for game, variant in VARIANTS.items():
        for constrained in (True, False):
            r = results[(game, constrained)]
            n = len(r)
            print(f"| {game} ({variant}) | {'on' if constrained else 'off'} | {n} | {r.count('parse') / n:.2f} | "
                  f"{r.count('rule') / n:.2f} | {r.count('ok') / n:.2f} |")  # fmt: skip
    for constrained in (True, False):
        r = [x for (g, c), v in results.items() if c == constrained for x in v]
        print(f"all games, grammar {'on' if constrained else 'off'}: {len(r)} moves, parse {r.count('parse') / len(r):.3f}, "
              f"rule {r.count('rule') / len(r):.3f}")  # fmt: skip


if __name__ == "__main__":
    main()
