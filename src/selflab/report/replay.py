"""An episode as a sequence of events a person can step through, refused attempts included.

Why not the transcript alone: when a model's move is refused, the transcript only says that the
error budget was spent; the raw model output and the reason it was refused live in the step
records. `events` merges both by turn (refused attempts of a turn come before its messages), from
the episode's plain dict, so the CLI replay, the HTML report and `selflab view` show the same.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from pydantic import BaseModel

from selflab.report.common import esc


class Event(BaseModel):
    """One line of a replay: a message of the game, or one attempt by a player."""

    turn: int
    kind: str  # "message" | "refused" | "accepted" | "defaulted"
    who: str
    text: str
    msg_type: str = ""
    raw: str | None = None
    reason: str | None = None
    recipients: list[int] | None = None
    player: int | None = None


def _who(sender: int, agents: list[str]) -> str:
    if sender < 0:
        return "Game"
    name = agents[sender] if 0 <= sender < len(agents) else "?"
    return f"P{sender} {name}"


def events(episode: dict[str, Any], player: int | None = None, accepted: bool = False) -> list[Event]:
    """The episode's events in order. `player` keeps only what that player could see; refused
    attempts are always included, accepted ones (raw output of each legal move) on request."""
    agents = list(episode.get("agents", []))
    attempts: dict[int, list[Event]] = defaultdict(list)
    for s in episode.get("steps", []):
        p = int(s.get("player", -1))
        if player is not None and p != player:
            continue
        err = s.get("error")
        if err is None and not accepted and not s.get("defaulted"):
            continue
        kind = "refused" if err else ("defaulted" if s.get("defaulted") else "accepted")
        reason = None
        if err:
            reason = f"{err.get('kind', 'error')}: {err.get('reason', '')}".strip()
        attempts[int(s.get("turn", 0))].append(
            Event(
                turn=int(s.get("turn", 0)),
                kind=kind,
                who=_who(p, agents),
                player=p,
                text=str(s.get("applied_action") if kind != "refused" else s.get("parsed_action", "")),
                raw=s.get("raw_output"),
                reason=reason,
            )
        )
    pending = [e for t in sorted(attempts) for e in attempts[t]]
    out: list[Event] = []
    for m in episode.get("transcript", []):
        rec = m.get("recipients")
        turn, sender, mtype = int(m.get("turn", 0)), int(m.get("sender", -1)), str(m.get("type", ""))
        # a turn's attempts go right before its player's move or the game's notice to that player
        due = [
            e
            for e in pending
            if e.turn < turn
            or (e.turn == turn and (e.player == sender or (mtype == "system" and rec == [e.player])))
        ]
        out.extend(due)
        pending = [e for e in pending if e not in due]
        if player is not None and rec is not None and player not in rec:
            continue
        out.append(
            Event(
                turn=turn,
                kind="message",
                who=_who(sender, agents),
                text=str(m.get("text", "")),
                msg_type=mtype,
                recipients=rec,
            )  # fmt: skip
        )
    out.extend(pending)
    return out


def episode_html(episode: dict[str, Any], open_: bool = False) -> str:
    """A collapsible replay of one episode; each refused attempt shows its raw output and reason."""
    agents = ", ".join(f"P{i}={a}" for i, a in enumerate(episode.get("agents", [])))
    head = (
        f"{esc(episode.get('episode_id'))} · {esc(episode.get('env_id'))} · seed {esc(episode.get('seed'))}"
        f" · {esc(agents)} · winners {esc(episode.get('winners'))} · {esc(episode.get('outcome', ''))}"
    )
    rows = []
    for e in events(episode):
        if e.kind == "message":
            to = "" if e.recipients is None else " → " + ",".join(f"P{r}" for r in e.recipients)
            rows.append(
                f"<tr class='ev-message'><td>t{e.turn}</td><td>{esc(e.who + to)}</td>"
                f"<td class='dim'>{esc(e.msg_type)}</td><td>{esc(e.text)}</td></tr>"
            )
        else:
            raw = f"<pre>{esc(e.raw)}</pre>" if e.raw else ""
            rows.append(
                f"<tr class='refused ev-{e.kind}'><td>t{e.turn}</td><td>{esc(e.who)}</td>"
                f"<td class='bad'>{esc(e.kind)}</td><td><b>{esc(e.reason or '')}</b>{raw}</td></tr>"
            )
    body = "<table><tr><th>turn</th><th>who</th><th>type</th><th>text</th></tr>" + "".join(rows) + "</table>"
    return f"<details{' open' if open_ else ''}><summary>{head}</summary>{body}</details>"
