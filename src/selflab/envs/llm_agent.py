"""An LLM plays a seat: the prompt is the game's rules plus this player's observation history, the
reply's last `ACTION: ...` line is the move.

The runner never lets the agent call the model: it calls `prepare(observation)` on every agent
whose turn it is across all running episodes, sends all those requests to the engine in one
`generate` call, and hands each completion back through `consume`. `act` does both for
standalone use. Re-prompting after an invalid move needs nothing special here: the env keeps the
same player on turn and its next observation carries the reason, which lands in the history.

Constrained decoding (on by default): when the observation carries the game's grammar of a legal
reply (`Observation.grammar`, from `TextEnv.action_grammar`), the request is sent with it as
`SamplingParams.constraint`, so the model can only write `ACTION: <a legal move>`. `constrained=False`
sends free text, to measure raw format-following. After a refused move the next prompt is short:
the reason and the action format, not the whole observation again (the state is already in the
history).

History, decided by the game: when an observation is marked complete (`Observation.complete`,
set by games with `TextEnv.complete_observations`), it already holds all of the past the game
considers relevant (Perudo: the dice left and this round's bids), so the agent forgets
its earlier turns and the prompt is the rules plus that one observation. A refused move keeps the
turn's observation and reply in the prompt, followed by the short re-prompt. Why here: the prompt
stays short and of near-constant length however long the game runs, and its start (the rules) is
the same for every seat and episode, which the engine's prefix cache serves once for all.

Context overflow (games with incremental observations): the oldest observation/reply pairs are
dropped until the prompt fits `context_tokens - max_new_tokens`; the rules and the latest
observation always stay (the latter cut from the front if it alone is too long).
"""

from __future__ import annotations

from typing import Any

from selflab.envs.agents import BaseAgent
from selflab.envs.core import Observation, extract_action
from selflab.models.types import Completion, GenerationRequest, LanguageModel, Message, SamplingParams

INSTRUCTIONS = (
    "You are a player in a text game. Read the rules, then on each turn reply with at most two short "
    "sentences of reasoning followed by your move on the last line, exactly in the action format."
)
CONSTRAINED_INSTRUCTIONS = (
    "You play a text game. On each turn reply with your move only, one line: ACTION: <move>."
)


class LLMAgent(BaseAgent):
    """A language model playing one seat."""

    name = "llm"

    def __init__(
        self,
        model: LanguageModel,
        rules: str = "",
        *,
        seed: int | None = None,
        name: str | None = None,
        temperature: float = 0.7,
        top_p: float = 0.95,
        max_new_tokens: int = 64,
        context_tokens: int = 2048,
        instructions: str | None = None,
        constrained: bool = True,
    ) -> None:
        super().__init__(seed, name or f"llm:{getattr(model, 'name', 'model')}")
        self.model = model
        self.rules = rules
        self.temperature = temperature
        self.top_p = top_p
        self.max_new_tokens = max_new_tokens
        self.context_tokens = context_tokens
        self.constrained = constrained
        self.instructions = instructions or (CONSTRAINED_INSTRUCTIONS if constrained else INSTRUCTIONS)
        self.player: int | None = None
        self.history: list[Message] = []
        self.dropped_messages = 0
        self._pending: GenerationRequest | None = None
        self._last: dict[str, Any] = {}

    @classmethod
    def from_spec(
        cls, model_spec: str, env_id: str | None = None, seed: int | None = None, **options: Any
    ) -> LLMAgent:
        """`LLMAgent.from_spec("smollm2-135m")`: loads (or reuses) the model through `load_model`."""
        from selflab.models import load_model

        model = load_model(model_spec)
        agent = cls(model, seed=seed, name=f"llm:{model_spec}", **options)
        if env_id is not None:
            from selflab.envs.registry import make

            agent.rules = make(env_id).rules  # the default variant's rules until `begin` gives the real ones
        return agent

    # ----------------------------------------------------------------- episode hooks

    def begin(self, rules: str, player: int) -> None:
        """Called by the runner when an episode starts: the exact rules of this table and the seat."""
        self.rules = rules
        self.player = player
        self.history = []
        self.dropped_messages = 0

    # ----------------------------------------------------------------- prompt

    def _count(self, text: str) -> int:
        tok = getattr(self.model, "tokenizer", None)
        if tok is not None:
            try:
                return len(tok.encode(text, add_special_tokens=False))
            except Exception:  # noqa: BLE001 - fall back to a character estimate
                pass
        return len(text) // 3 + 1

    def _system(self) -> Message:
        return Message(role="system", content=f"{self.instructions}\n\n{self.rules}".strip())

    def messages_for(self, observation: Observation | str) -> list[Message]:
        """The prompt for this observation, trimmed to the token budget (oldest turns dropped)."""
        system = self._system()
        history = [*self.history, Message(role="user", content=str(observation))]
        budget = self.context_tokens - self.max_new_tokens - 16
        overhead = 8  # chat-template tokens per message, roughly
        cost = [self._count(m.content) + overhead for m in history]
        fixed = self._count(system.content) + overhead
        start = 0
        # Drop whole (observation, reply) pairs from the front, keeping the latest observation.
        while start < len(history) - 1 and fixed + sum(cost[start:]) > budget:
            start += 2 if start + 1 < len(history) - 1 else 1
        self.dropped_messages = start
        kept = history[start:]
        if fixed + sum(cost[start:]) > budget and kept:
            # The latest observation alone overflows: keep its end, where the state and prompt are.
            room = max(budget - fixed - overhead, 32)
            text = kept[-1].content
            while self._count(text) > room and len(text) > 64:
                text = text[len(text) // 4 :]
            kept[-1] = Message(role="user", content="[earlier text cut]\n" + text)
        if kept and kept[0].role == "assistant":
            kept = kept[1:]
        return [system, *kept]

    def user_text(self, observation: Observation) -> str:
        """What the model reads this turn: the observation, or after a refused move (with the
        previous observation already in the history) a short re-prompt with the reason."""
        error = getattr(observation, "error", None)
        if error is None or not self.history:
            return str(observation)
        what = "could not be read" if error.kind == "parse" else "breaks the rules"
        prompt = str(observation).strip().splitlines()[-1]
        return (
            f"Your action {what}: {error.reason}\n"
            f"{observation.attempts_left} attempt(s) left before the default move. {prompt}"
        )

    def prepare(self, observation: Observation) -> GenerationRequest:
        """The request for this turn; the runner batches it with other agents' requests."""
        if getattr(observation, "complete", False) and getattr(observation, "error", None) is None:
            self.history = []  # the game's observation carries the relevant past
        text = self.user_text(observation)
        messages = self.messages_for(text)
        self.history.append(Message(role="user", content=text))
        grammar = getattr(observation, "grammar", None) if self.constrained else None
        sampling = SamplingParams(
            temperature=self.temperature,
            top_p=self.top_p if self.temperature > 0 else 1.0,
            max_new_tokens=self.max_new_tokens,
            seed=self.rng.randrange(2**31),
            constraint=grammar,
        )
        self._pending = GenerationRequest(messages=tuple(messages), sampling=sampling)
        return self._pending

    def consume(self, completion: Completion) -> str:
        """The move in the completion (the last `ACTION:` line), with the raw text recorded."""
        raw = completion.text if completion.error is None else ""
        self.last_raw = raw
        self.history.append(Message(role="assistant", content=raw))
        action = extract_action(raw)
        self._last = {
            "raw_output": raw,
            "parsed_action": action,
            "prompt": [m.model_dump() for m in (self._pending.messages if self._pending else ())],
            "prompt_tokens": completion.prompt_tokens,
            "completion_tokens": completion.completion_tokens,
            "finish_reason": completion.finish_reason,
            "backend_error": completion.error,
            "dropped_messages": self.dropped_messages,
            "constrained": self._pending is not None and self._pending.sampling.constraint is not None,
        }
        self._pending = None
        return action

    def act(self, observation: Observation) -> str:
        request = self.prepare(observation)
        return self.consume(self.model.generate([request])[0])

    def record(self) -> dict[str, Any]:
        return dict(self._last)
