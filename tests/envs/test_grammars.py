"""Move grammars (issue 10 part 3): for every variant and every turn of seeded episodes, the grammar
of a legal reply compiles with llguidance, accepts the move the scripted agent makes (and the
random agent's, where the env lists legal actions), rejects illegal moves, and every text sampled
from it is read by `step` without a parse error."""

from __future__ import annotations

import copy
import random

import pytest

pytest.importorskip("llguidance")

import llguidance as llg  # noqa: E402

from selflab.envs.core import ParseError  # noqa: E402
from selflab.envs.registry import list_envs, make, make_agent  # noqa: E402
from selflab.models.constraints import _byte_tokenizer, mismatch, validate  # noqa: E402
from selflab.models.types import Constraint  # noqa: E402

EOS = 256
PRINTABLE = set(range(32, 127))


def sample(constraint: Constraint, rng: random.Random, max_bytes: int = 600) -> str:
    """A random text of the grammar: a byte-level walk under llguidance's masks, mostly printable
    ASCII, ending (EOS) with probability 0.25 wherever the grammar accepts."""
    matcher = llg.LLMatcher(_byte_tokenizer(), validate(constraint), log_level=0)
    out = bytearray()
    while len(out) < max_bytes:
        bias = matcher.compute_logit_bias()
        allowed = [i for i, b in enumerate(bias) if b]
        if not allowed or matcher.is_stopped():
            break
        if EOS in allowed and (rng.random() < 0.25 or len(allowed) == 1):
            break
        nice = [i for i in allowed if i in PRINTABLE]
        pick = rng.choice(nice if nice and rng.random() < 0.9 else [i for i in allowed if i != EOS])
        assert matcher.consume_token(pick)
        out.append(pick)
    return out.decode("utf-8", "replace")


VARIANTS = [s.id for s in list_envs()]


def _play(env_id: str, seat_agent: str, seed: int, max_steps: int = 60):
    """Yield (env before the move, player, grammar, reply) along one seeded episode."""
    env = make(env_id)
    env.reset(seed=seed)
    agents = [make_agent(env_id, seat_agent, seed=seed + i) for i in range(env.num_players)]
    for i, a in enumerate(agents):
        getattr(a, "begin", lambda *_: None)(env.rules, i)
    steps = 0
    while not env.done and steps < max_steps:
        player, obs = env.observe()
        reply = agents[player].act(obs)
        yield env, player, obs, reply
        env.step(reply)
        steps += 1


@pytest.mark.parametrize("env_id", VARIANTS)
def test_grammar_accepts_the_agents_moves_and_samples_parse(env_id: str) -> None:
    rng = random.Random(env_id)
    kinds = ["scripted", "random"]
    for seed in range(2):
        for kind in kinds:
            for env, _player, obs, reply in _play(env_id, kind, seed):
                assert obs.grammar is not None, f"{env_id} declares no move grammar"
                validate(obs.grammar)
                # The agent's own move: accepted by the grammar whenever the env accepts it
                # (random agents of free-text games write text outside any format on purpose).
                if kind == "scripted" or obs.legal_actions is not None:
                    trial = copy.deepcopy(env)
                    if trial.step(reply).error is None:
                        assert mismatch(obs.grammar, reply.strip()) is None, (env_id, reply)
                # A text sampled from the grammar is never a parse error.
                if rng.random() < 0.5:
                    text = sample(obs.grammar, rng)
                    result = copy.deepcopy(env).step(text)
                    assert not isinstance(result.error, ParseError), (env_id, text, result.error)


ILLEGAL = {
    # (env id, setup moves, illegal reply): the grammar of the next turn must reject it.
    "perudo": ("perudo-v0", ["ACTION: bid 3 4"], ["ACTION: bid 3 3", "ACTION: bid 2 6", "ACTION: bid 0 4",
                                                  "ACTION: bid -3 5", "ACTION: challenge now"]),
    "perudo-open": ("perudo-v0", [], ["ACTION: challenge", "ACTION: bid 11 2", "ACTION: bid 3 7"]),
    "detective": ("detective-v0", [], ["ACTION: ACCUSE Sherlock Holmes", "ACTION: ASK Nobody: alibi",
                                       "ACTION: ASK", "ACTION: pass"]),
    "dond": ("dealnodeal-v0", [], ["ACTION: ACCEPT", "ACTION: PROPOSE: books=99 hats=0 balls=0",
                                   "ACTION: I accept", "ACTION: SAY: "]),
    "guess": ("guess-person-small-v0", [], ["ACTION: GUESS Nobody At All", "ACTION: ASK colour = red",
                                            "ACTION: ASK born_before 0", "ACTION: maybe"]),
    "spy": ("spy-v0", [], ["ACTION: vote 1", "ACTION: ask 0 Is it cold?", "ACTION: ask 9 Is it cold?",
                           "ACTION: ask 1 "]),
    "taboo": ("taboo-v0", ["ACTION: Something sweet and red grows on trees."],
              ["ACTION: GUESS: a b c d", "ACTION: ", "ACTION: guess apple"]),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(ILLEGAL))
def test_grammar_rejects_illegal_moves(case: str) -> None:
    env_id, setup, bad = ILLEGAL[case]
    env = make(env_id)
    env.reset(seed=3)
    for move in setup:
        assert env.step(move).error is None
    player, obs = env.observe()
    for text in bad:
        assert mismatch(obs.grammar, text) is not None, (case, text)


def test_blocks_grammar_offers_only_clear_blocks() -> None:
    inst = {"id": "t", "initial": [["A", "B"], ["C"]], "goal": [["A"], ["B", "C"]], "optimal": -1}
    env = make("blocks-v0", instance=inst)
    env.reset(seed=0)
    g = env.action_grammar(0)
    assert mismatch(g, "ACTION: move B table") is None
    assert mismatch(g, "ACTION: move A table") is not None  # A is under B
    assert mismatch(g, "ACTION: move C A") is not None  # A is covered


def test_perudo_grammar_follows_the_bid() -> None:
    env = make("perudo-small-v0")
    env.reset(seed=0)
    env.step("ACTION: bid 2 5")
    g = env.action_grammar(env.current_player())
    assert mismatch(g, "ACTION: challenge") is None
    assert mismatch(g, "ACTION: bid 2 6") is None
    assert mismatch(g, "ACTION: bid 3 1") is None
    assert mismatch(g, "ACTION: bid 2 4") is not None
    assert mismatch(g, "ACTION: bid 5 1") is not None  # only 4 dice in play
