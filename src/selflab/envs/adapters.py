"""Adapters so users of PettingZoo and Gymnasium can plug selflab games into their code.

- `PettingZooAEC`: the AEC API (agents "player_0".., text observation and action spaces).
- `SingleLearnerEnv`: a Gymnasium env for one learning seat; the other seats are played by fixed
  agents (scripted, random, an LLM...), so a single-agent RL library can train against them.

Observations and actions are text. Gymnasium's `Text` space only admits characters of its
charset, so observations are mapped onto printable ASCII (other characters become "?") and cut
to `max_obs_chars`, keeping the end, where the current state and the request to act are.
"""

from __future__ import annotations

import string
from typing import Any

import gymnasium
from gymnasium import spaces
from pettingzoo import AECEnv

from selflab.envs.agents import Agent
from selflab.envs.core import TextEnv
from selflab.envs.registry import make, make_agent

CHARSET = frozenset(string.printable)


class TextObs(str):
    """A text observation that also carries `dtype` (= the Text space's dtype), which
    PettingZoo's api_test reads from observations as if they were arrays."""

    dtype = str


def _text(s: str, limit: int) -> TextObs:
    s = "".join(c if c in CHARSET else "?" for c in s)
    return TextObs(s[-limit:] if len(s) > limit else s)


def text_space(max_length: int) -> spaces.Text:
    return spaces.Text(max_length=max_length, min_length=0, charset=CHARSET)


def _passive_view(env: Any, player: int, last: int = 20) -> str:
    """What a player who is not on turn can see: its recent messages and its private state."""
    lines = [m.render(player) for m in env.transcript(player)[-last:]] if hasattr(env, "transcript") else []
    if isinstance(env, TextEnv) and not env.done:
        lines.append(env.state_text(player))
    return "\n".join(lines)


class PettingZooAEC(AECEnv):
    """A selflab game as a PettingZoo AEC env. `PettingZooAEC("perudo-v0", players=3)`."""

    metadata = {"name": "selflab", "render_modes": ["ansi", "human"], "is_parallelizable": False}

    def __init__(
        self, env_id: str, render_mode: str | None = None, max_obs_chars: int = 8192, **env_kwargs: Any
    ):
        super().__init__()
        self.game = make(env_id, **env_kwargs)
        self.env_id = env_id
        self.metadata = {**self.metadata, "name": f"selflab_{env_id}"}
        self.render_mode = render_mode
        self.max_obs_chars = max_obs_chars
        self.possible_agents = [f"player_{i}" for i in range(self.game.num_players)]
        self.observation_spaces = {a: text_space(max_obs_chars) for a in self.possible_agents}
        self.action_spaces = {a: text_space(1024) for a in self.possible_agents}

    def observation_space(self, agent: str) -> spaces.Space:
        return self.observation_spaces[agent]

    def action_space(self, agent: str) -> spaces.Space:
        return self.action_spaces[agent]

    @staticmethod
    def _seat(agent: str) -> int:
        return int(agent.rsplit("_", 1)[1])

    def reset(self, seed: int | None = None, options: dict | None = None) -> None:
        self.game.reset(seed=seed)
        self.agents = list(self.possible_agents)
        self.rewards = {a: 0.0 for a in self.agents}
        self._cumulative_rewards = {a: 0.0 for a in self.agents}
        self.terminations = {a: False for a in self.agents}
        self.truncations = {a: False for a in self.agents}
        self.infos = {a: {} for a in self.agents}
        self._sync_selection()

    def _sync_selection(self) -> None:
        if not self.game.done:
            player, obs = self.game.observe()
            self.agent_selection = f"player_{player}"
            self._current_obs = (player, str(obs))
            self.infos[self.agent_selection] = {"legal_actions": obs.legal_actions, "turn": obs.turn}
        elif self.agents:
            self.agent_selection = self.agents[0]

    def observe(self, agent: str) -> str:
        seat = self._seat(agent)
        if not self.game.done and getattr(self, "_current_obs", (None,))[0] == seat:
            return _text(self._current_obs[1], self.max_obs_chars)
        return _text(_passive_view(self.game, seat), self.max_obs_chars)

    def step(self, action: str | None) -> None:
        agent = self.agent_selection
        if self.terminations[agent] or self.truncations[agent]:
            self._was_dead_step(action)
            if not self.agents:
                return
            if self.game.done:
                self.agent_selection = self.agents[0]
            return
        self._cumulative_rewards[agent] = 0.0
        self.rewards = {a: 0.0 for a in self.agents}
        result = self.game.step("" if action is None else str(action))
        self.infos[agent] = {
            "error": None if result.error is None else result.error.to_dict(),
            "applied_action": result.action,
            "defaulted": result.defaulted,
        }
        if result.done:
            truncated = str(self.game.info.get("outcome", "")).startswith("turn limit")
            for a in self.agents:
                self.rewards[a] = float(self.game.rewards[self._seat(a)])
                self.terminations[a] = not truncated
                self.truncations[a] = truncated
                self.infos[a] = {**self.infos.get(a, {}), "winners": self.game.info.get("winners", [])}
            self._accumulate_rewards()
            self.agent_selection = self.agents[0]
            return
        self._sync_selection()
        self._accumulate_rewards()

    def render(self) -> str | None:
        text = "\n".join(m.render() for m in getattr(self.game, "messages", []))
        if self.render_mode == "human":
            print(text)
            return None
        return text

    def close(self) -> None:
        pass


class SingleLearnerEnv(gymnasium.Env):
    """One seat learns; the others are played by fixed agents built fresh each episode.

    `SingleLearnerEnv("perudo-v0", opponents=["scripted"], learner_seat=0)`. `learner_seat=None`
    draws the seat from the reset seed (fair over many episodes). The reward is the learner's final
    reward, given on the last step; `info["error"]` reports a refused action (the learner is then
    asked again)."""

    metadata = {"render_modes": ["ansi"]}

    def __init__(
        self,
        env_id: str,
        opponents: list[str | Agent] | None = None,
        learner_seat: int | None = 0,
        max_obs_chars: int = 8192,
        **env_kwargs: Any,
    ) -> None:
        self.game = make(env_id, **env_kwargs)
        self.env_id = env_id
        self.opponent_specs = list(opponents or ["scripted"])
        self.fixed_seat = learner_seat
        self.max_obs_chars = max_obs_chars
        self.observation_space = text_space(max_obs_chars)
        self.action_space = text_space(1024)
        self.learner = 0
        self.others: dict[int, Agent] = {}
        self.render_mode = "ansi"

    def _build_opponents(self, seed: int | None) -> None:
        seats = [p for p in range(self.game.num_players) if p != self.learner]
        self.others = {}
        for i, seat in enumerate(seats):
            spec = self.opponent_specs[i % len(self.opponent_specs)]
            agent = (
                make_agent(self.env_id, spec, seed=None if seed is None else seed * 1000 + seat)
                if isinstance(spec, str)
                else spec
            )
            begin = getattr(agent, "begin", None)
            if callable(begin):
                begin(self.game.rules, seat)
            self.others[seat] = agent

    def _play_others(self) -> None:
        while not self.game.done:
            player, obs = self.game.observe()
            if player == self.learner:
                return
            self.game.step(self.others[player].act(obs))

    def _obs(self) -> str:
        if self.game.done:
            return _text(_passive_view(self.game, self.learner), self.max_obs_chars)
        player, obs = self.game.observe()
        return _text(str(obs), self.max_obs_chars)

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[str, dict]:
        super().reset(seed=seed)
        self.game.reset(seed=seed)
        if self.fixed_seat is None:
            self.learner = int(self.np_random.integers(self.game.num_players))
        else:
            self.learner = self.fixed_seat % self.game.num_players
        self._build_opponents(seed)
        self._play_others()
        return self._obs(), {"seat": self.learner, "done_before_turn": self.game.done}

    def step(self, action: str) -> tuple[str, float, bool, bool, dict]:
        if self.game.done:
            raise RuntimeError("episode is over; call reset()")
        result = self.game.step(str(action))
        info: dict[str, Any] = {
            "error": None if result.error is None else result.error.to_dict(),
            "applied_action": result.action,
            "defaulted": result.defaulted,
        }
        if result.error is None or result.defaulted:
            self._play_others()
        done = self.game.done
        reward = float(self.game.rewards[self.learner]) if done else 0.0
        truncated = done and str(self.game.info.get("outcome", "")).startswith("turn limit")
        if done:
            info["winners"] = self.game.info.get("winners", [])
        return self._obs(), reward, done and not truncated, truncated, info

    def render(self) -> str:
        return "\n".join(m.render() for m in getattr(self.game, "messages", []))
