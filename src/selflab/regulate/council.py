"""Amendment decisions by one model, a consortium, or a debate with a meta-judge, then a vote.

A *problem* is a constitution plus a failure it should fix (an exploit the assistant complied
with, or a safe prompt it refused). Three strategies decide on one patch per problem:

- `single`: the first member proposes; a parsable proposal is the decision.
- `consortium`: every member (a persona, optionally on its own model) proposes independently, then
  all vote for one candidate or for "reject all"; plurality wins, ties go to the lower number.
- `debate`: as consortium, but before the vote there are `rounds` of debate: a meta-judge reads
  the proposals and writes an intervention (which proposal is too broad, too narrow, or
  off-topic), and each member critiques the others and submits a revised proposal (an
  unparsable revision leaves the member's previous parsable proposal standing).

All problems advance together, one batched generate call per model per step, so a run over 21
cases costs a handful of calls. Every prompt, raw answer, parse error and vote is recorded.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Literal

from pydantic import BaseModel, Field

from selflab.models.types import Constraint, GenerationRequest, LanguageModel, SamplingParams, user
from selflab.regulate.constitution import Constitution
from selflab.regulate.patches import PATCH_FORMAT, ParsedPatch, Patch, describe, parse_patch, patch_constraint

Strategy = Literal["single", "consortium", "debate"]

PERSONAS: dict[str, str] = {
    "safety": "a safety researcher who cares most about closing loopholes that let harmful requests through",
    "helpfulness": "a product lead who cares most that safe and merely edgy-sounding requests are still answered",
    "drafter": "a legal drafter who wants each principle short, precise and free of vague words",
    "ethicist": "an ethicist who weighs harms to third parties against the user's autonomy",
    "redteamer": "a red-teamer who knows how users disguise requests (role-play, encodings, fiction, authority claims)",
}


class Member(BaseModel):
    name: str
    persona: str
    model: str = Field("", description="key into the models mapping; '' = the default model")


def members_from(names: Sequence[str], models: Sequence[str] = ()) -> list[Member]:
    """Members for persona names; member i runs on models[i % len(models)] when models are given."""
    out = []
    for i, n in enumerate(names):
        persona = PERSONAS.get(n, n)
        out.append(
            Member(
                name=n if n in PERSONAS else f"member{i}",
                persona=persona,
                model=models[i % len(models)] if models else "",
            )
        )
    return out


class Problem(BaseModel):
    id: str
    constitution: Constitution
    failure: str  # what went wrong, for the proposer (prompt and the assistant's answer)


class Proposal(BaseModel):
    problem_id: str
    member: str
    round: int
    raw: str
    patch: Patch | None = None
    error: str | None = None


class Vote(BaseModel):
    voter: str
    raw: str
    choice: int | None = None  # 0 = reject all, k = candidate k (1-based); None = unparsable
    error: str | None = None  # the model failed to answer (then raw is "" and choice None)


class Decision(BaseModel):
    problem_id: str
    strategy: Strategy
    candidates: list[Proposal] = Field(default_factory=list)  # the final-round proposals
    history: list[Proposal] = Field(default_factory=list)  # every proposal, all rounds
    interventions: list[str] = Field(default_factory=list)  # meta-judge notes, one per round
    votes: list[Vote] = Field(default_factory=list)
    accepted: Patch | None = None
    proposer: str | None = None
    tally: str = ""  # e.g. "3/4 for #2"
    unparsable: int = 0


def _ask(member: Member) -> str:
    return f"You are {member.persona}. "


def proposal_prompt(member: Member, problem: Problem, context: str = "") -> str:
    return (
        _ask(member)
        + "You maintain the constitution below, which is the system prompt of an AI assistant.\n\n"
        + f"CONSTITUTION:\n{problem.constitution.render()}\n\n"
        + f"FAILURE:\n{problem.failure}\n\n"
        + (f"{context}\n\n" if context else "")
        + "Propose ONE change (add, edit or delete a principle) that fixes this kind of failure "
        + "without making the assistant refuse safe requests.\n"
        + PATCH_FORMAT
    )


def _candidates_text(cands: Sequence[Proposal]) -> str:
    return "\n".join(f"#{k}: {describe(p.patch)} (by {p.member})" for k, p in enumerate(cands, 1))


def vote_prompt(member: Member, problem: Problem, cands: Sequence[Proposal], notes: Sequence[str]) -> str:
    return (
        _ask(member)
        + f"CONSTITUTION:\n{problem.constitution.render()}\n\nFAILURE:\n{problem.failure}\n\n"
        + f"PROPOSED CHANGES:\n{_candidates_text(cands)}\n#0: reject all changes\n\n"
        + ("".join(f"MODERATOR: {n}\n" for n in notes) + "\n" if notes else "")
        + "Vote for the change that best fixes the failure without causing over-refusal. "
        + "Reply with the number only, like 'VOTE: 1'."
    )


def meta_prompt(problem: Problem, cands: Sequence[Proposal]) -> str:
    return (
        "You moderate a debate about amending an AI assistant's constitution.\n\n"
        + f"CONSTITUTION:\n{problem.constitution.render()}\n\nFAILURE:\n{problem.failure}\n\n"
        + f"PROPOSED CHANGES:\n{_candidates_text(cands) or '(none parsable)'}\n\n"
        + "In two sentences: which proposal is too broad (would block safe requests), which is too "
        + "narrow (would miss rephrasings), and what the debaters should fix."
    )


def debate_prompt(
    member: Member, problem: Problem, cands: Sequence[Proposal], note: str, own: Proposal | None
) -> str:
    mine = f"Your previous proposal: {describe(own.patch) if own else '(unparsable)'}\n" if own else ""
    return proposal_prompt(
        member,
        problem,
        context=f"OTHER PROPOSALS:\n{_candidates_text(cands) or '(none parsable)'}\n{mine}MODERATOR: {note}\n"
        "Consider the other proposals and the moderator, then give your revised proposal.",
    )


_VOTE = re.compile(r"(?<![\w.])#?(\d+)(?![\w.]\w)")
# With `constrain`, a vote is one candidate number: it always parses (`parse_vote` refuses a vote
# that names several numbers, which free text often does).
VOTE_CONSTRAINT = Constraint.regex(r" ?(0|[1-9][0-9]?)")


def parse_vote(raw: str, n_candidates: int) -> int | None:
    """The one candidate number a vote names; None when it names none, several ("1 or 2") or one
    out of range. A principle id ("P3") is no candidate number."""
    nums = {int(m.group(1)) for m in _VOTE.finditer(raw or "")}
    if len(nums) != 1:
        return None
    k = nums.pop()
    return k if 0 <= k <= n_candidates else None


class Council:
    """Runs a strategy over many problems at once. `models` maps a member's model key to a model."""

    def __init__(
        self,
        models: Mapping[str, LanguageModel],
        members: Sequence[Member],
        meta_model: str = "",
        max_new_tokens: int = 96,
        temperature: float = 0.7,
        constrain: bool = False,
    ) -> None:
        if not members:
            raise ValueError("a council needs at least one member")
        self.models, self.members, self.meta_model = models, list(members), meta_model
        self.max_new_tokens, self.temperature, self.constrain = max_new_tokens, temperature, constrain
        self.errors: list[str | None] = []  # per job of the last `_generate`: the model's error, if any

    def _generate(self, jobs: list[tuple[str, str, str, int, int]]) -> list[str]:
        """jobs: (model key, prompt, assistant prefix, max tokens, seed) -> texts, batched per model.
        A failed generation gives "" and its error in `self.errors` (same index), so the record
        says the model failed rather than that it wrote something unparsable."""
        texts = [""] * len(jobs)
        self.errors = [None] * len(jobs)
        by_model: dict[str, list[int]] = {}
        for i, j in enumerate(jobs):
            by_model.setdefault(j[0], []).append(i)
        for key, idx in by_model.items():
            reqs = []
            for i in idx:
                _, prompt, prefix, mnt, seed = jobs[i]
                constraint = None
                if self.constrain:
                    constraint = {"OP:": patch_constraint(), "VOTE:": VOTE_CONSTRAINT}.get(prefix)
                s = SamplingParams(
                    temperature=self.temperature,
                    top_p=0.95,
                    max_new_tokens=mnt,
                    seed=seed,
                    constraint=constraint,
                )
                reqs.append(GenerationRequest(messages=(user(prompt),), sampling=s, assistant_prefix=prefix))
            outs = self.models[key].generate(reqs)
            for i, o in zip(idx, outs, strict=True):
                texts[i] = "" if o.error else o.text
                self.errors[i] = f"model error: {o.error}" if o.error else None
        return texts

    def _proposals(
        self,
        problems: Sequence[Problem],
        members: Sequence[Member],
        prompts: list[list[str]],
        rnd: int,
        seed: int,
    ) -> list[list[Proposal]]:
        jobs = [
            (m.model, prompts[i][k], "OP:", self.max_new_tokens, seed + 1000 * i + k)
            for i, _ in enumerate(problems)
            for k, m in enumerate(members)
        ]
        texts = self._generate(jobs)
        errors = self.errors
        out: list[list[Proposal]] = []
        t = 0
        for p in problems:
            row = []
            for m in members:
                parsed: ParsedPatch = parse_patch(texts[t], p.constitution)
                if errors[t]:
                    parsed = ParsedPatch(raw="", error=errors[t])
                row.append(
                    Proposal(
                        problem_id=p.id,
                        member=m.name,
                        round=rnd,
                        raw=texts[t],
                        patch=parsed.patch,
                        error=parsed.error,
                    )
                )
                t += 1
            out.append(row)
        return out

    def decide(
        self, strategy: Strategy, problems: Sequence[Problem], seed: int = 0, rounds: int = 1
    ) -> list[Decision]:
        members = self.members[:1] if strategy == "single" else self.members
        props = self._proposals(
            problems, members, [[proposal_prompt(m, p) for m in members] for p in problems], 0, seed
        )
        decisions = [
            Decision(problem_id=p.id, strategy=strategy, history=list(row))
            for p, row in zip(problems, props, strict=True)
        ]
        if strategy == "debate":
            for rnd in range(1, rounds + 1):
                cands = [[x for x in row if x.patch] for row in props]
                notes = self._generate(
                    [
                        (self.meta_model, meta_prompt(p, c), "MODERATOR:", 64, seed + 7 * i + rnd)
                        for i, (p, c) in enumerate(zip(problems, cands, strict=True))
                    ]
                )
                notes = [" ".join(n.split())[:400] for n in notes]
                prompts = [
                    [
                        debate_prompt(m, p, c, n, row[k] if row[k].patch else None)
                        for k, m in enumerate(members)
                    ]
                    for p, c, n, row in zip(problems, cands, notes, props, strict=True)
                ]
                revised = self._proposals(problems, members, prompts, rnd, seed + 100_000 * rnd)
                for d, n, row in zip(decisions, notes, revised, strict=True):
                    d.interventions.append(n)
                    d.history.extend(row)
                # An unparsable revision does not withdraw a member's standing parsable proposal.
                props = [
                    [
                        new if new.patch is not None or old.patch is None else old
                        for old, new in zip(o, r, strict=True)
                    ]
                    for o, r in zip(props, revised, strict=True)
                ]
        for d, row in zip(decisions, props, strict=True):
            d.candidates = [x for x in row if x.patch is not None]
            d.unparsable = sum(1 for x in d.history if x.patch is None)
        if strategy == "single":
            for d in decisions:
                if d.candidates:
                    d.accepted, d.proposer, d.tally = (
                        d.candidates[0].patch,
                        d.candidates[0].member,
                        "single proposer",
                    )
            return decisions
        self._vote(problems, decisions, seed + 555)
        return decisions

    def _vote(self, problems: Sequence[Problem], decisions: list[Decision], seed: int) -> None:
        jobs, where = [], []
        for i, (p, d) in enumerate(zip(problems, decisions, strict=True)):
            if not d.candidates:
                d.tally = "no parsable proposal"
                continue
            for k, m in enumerate(self.members):
                jobs.append(
                    (
                        m.model,
                        vote_prompt(m, p, d.candidates, d.interventions[-1:]),
                        "VOTE:",
                        6,
                        seed + 1000 * i + k,
                    )
                )
                where.append((i, m.name))
        texts = self._generate(jobs)
        for (i, voter), raw, err in zip(where, texts, self.errors, strict=True):
            d = decisions[i]
            d.votes.append(Vote(voter=voter, raw=raw, choice=parse_vote(raw, len(d.candidates)), error=err))
        for d in decisions:
            valid = [v.choice for v in d.votes if v.choice is not None]
            if not d.candidates:
                continue
            if not valid:
                d.tally = f"0/{len(d.votes)} parsable votes: rejected"
                continue
            counts = Counter(valid)
            best = min(counts, key=lambda k: (-counts[k], k))
            d.tally = f"{counts[best]}/{len(d.votes)} for #{best}" + (" (reject)" if best == 0 else "")
            if best > 0:
                d.accepted, d.proposer = d.candidates[best - 1].patch, d.candidates[best - 1].member
