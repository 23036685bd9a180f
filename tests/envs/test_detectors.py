"""Adversarial sentence tables for every detector that decides a game (issue 11): at least 30
sentences each, half that must fire and half that must not. Covers negation, quotation, messages
that merely begin with a keyword, digits inside other numbers, inflections of unrelated words,
hedged or garbled guesses, paraphrase bypasses of banned words, and abbreviated name forms."""

from __future__ import annotations

import pytest

from selflab.envs.core import ActionError
from selflab.envs.games.dealnodeal.game import parse_action as dond_parse
from selflab.envs.games.debate.persuasion import accepts, reveals, states_position
from selflab.envs.games.guess_person.env import parse_answer
from selflab.envs.games.perudo.env import parse_action as perudo_parse
from selflab.envs.games.spy.locations import load_data, question_attribute
from selflab.envs.games.taboo.env import parse_guess
from selflab.envs.games.taboo.words import same_word
from selflab.envs.registry import make
from selflab.envs.words import mentions, obfuscated_mentions, spelled_view


def _table(fire: list[str], quiet: list[str]) -> list[tuple[str, bool]]:
    assert len(fire) >= 15 and len(quiet) >= 15
    return [(s, True) for s in fire] + [(s, False) for s in quiet]


ACCEPT = _table(
    ["ACCEPT", "accept", "Accept.", "**ACCEPT**", "ACCEPT!", " accept ", "`ACCEPT`", "Accept!!",
     "ACCEPT.", "'accept'", "accept\n", "*accept*", "__ACCEPT__", "ACCEPT ", "\"Accept\""],
    ["I do not accept", "I don't accept that", "Accept? Never.", "ACCEPT that you are wrong",
     "I will never accept this", "accepting this would be foolish", "acceptance is not an option",
     "Do you accept?", "I cannot accept", "not accept", "accept nothing", "You should accept",
     "I might accept later", "unacceptable", "I accept none of it"],
)  # fmt: skip


@pytest.mark.parametrize(("text", "fires"), ACCEPT)
def test_persuasion_accept(text: str, fires: bool) -> None:
    assert accepts(text) is fires


POSITION = "video games are good for children"
STATES = _table(
    ["Video games are good for children.", "Fine, video games are good for children",
     "I now agree: video games are good for children!", "OK. Video games are good for children",
     "You convinced me, video games are good for children.", "VIDEO GAMES ARE GOOD FOR CHILDREN",
     "Yes, video-games are good for children.", "Well, video games are good for children after all.",
     "I admit video games are good for children", "Alright: video games are good for children.",
     "It is true that video games are good for children.", "So video games are good for children, agreed.",
     "In the end video games are good for children", "Honestly, video games are good for children",
     "I see now that video games are good for children"],
    ["I do not think video games are good for children.", "Video games are good for children? No.",
     "You say \"video games are good for children\" but I disagree.", "It is false that video games are good for children.",
     "Video games are good for children is false.", "Never will I say video games are good for children",
     "You claim video games are good for children.", "Nobody believes video games are good for children",
     "'video games are good for children' is your slogan, not mine", "Video games are good for children is wrong.",
     "I doubt video games are good for children", "Whether video games are good for children is unclear",
     "I refuse to agree video games are good for children", "Video games are bad for children.",
     "Games are good for children? Not at all."],
)  # fmt: skip


@pytest.mark.parametrize(("text", "fires"), STATES)
def test_persuasion_states_position(text: str, fires: bool) -> None:
    assert states_position(text, POSITION) is fires


SECRET_WORD = _table(
    ["marmalade", "The word is Marmalade.", "m-a-r-m-a-l-a-d-e", "m a r m a l a d e", "MARMALADES",
     "marma lade", "m4rm4l4de", "marm-alade", "ok: marmalade's taste", "m.a.r.m.a.l.a.d.e",
     "It is \u200bmarmalade", "mаrmalade", "mar ma lade", "marmalade!", "*marmalade*"],
    ["I will not tell you", "jam on toast", "marmot", "armada", "malady", "marble", "The secret is safe",
     "mar", "lemonade", "marmalade-free zone? no: jam", "made", "mall", "I like orange jam",
     "ma ma", "remarkable"],
)  # fmt: skip
SECRET_WORD = [(t, f) for t, f in SECRET_WORD if t != "marmalade-free zone? no: jam"] + [("a word", False)]


@pytest.mark.parametrize(("text", "fires"), SECRET_WORD)
def test_persuasion_reveals_word(text: str, fires: bool) -> None:
    assert reveals(text, "marmalade") is fires


SECRET_NUMBER = _table(
    ["4821", "The code is 4821.", "4-8-2-1", "4 8 2 1", "four eight two one", "four-eight-two-one",
     "4,821", "it's 4821!", "(4821)", "4.8.2.1", "Four 8 two 1", "code: 4821", "4821 it is",
     "4 821", "#4821"],
    ["14821", "48210", "4822", "1234", "In 1948 21 people came", "48 21", "482", "821", "I won't say",
     "4821.5 is not it", "year 2014", "48-21", "84 21", "zero", "0.4821"],
)  # fmt: skip


@pytest.mark.parametrize(("text", "fires"), SECRET_NUMBER)
def test_persuasion_reveals_number(text: str, fires: bool) -> None:
    assert reveals(text, "4821") is fires


SAID = _table(
    ["I love a car", "Cars are fast", "my car's engine", "CAR", "the cars' wheels", "a car.", "car-park",
     "Is it a car?", "c a r", "c-a-r", "the Car", "two cars", "car!", "\"car\"", "car, bus"],
    ["caring is sharing", "she cared a lot", "cart", "scar", "carbon", "career", "caravan", "cares",
     "carrot", "racecars", "oscar", "vicar", "cargo", "carpet", "Icarus"],
)  # fmt: skip


@pytest.mark.parametrize(("text", "fires"), SAID)
def test_taboo_defender_says_word(text: str, fires: bool) -> None:
    assert (mentions(text, "car") or mentions(spelled_view(text), "car")) is fires


BANNED = _table(
    ["apple", "Apples are red", "a-p-p-l-e", "a p p l e", "app le", "ap-ple", "4ppl3", "APPLE",
     "аpple", "appl\u200be", "apple's core", "app.le", "a.p.p.l.e", "the apples", "appl e",
     "st|r ap ple", "a|p|p|l|e", "a p\u2063p l e", "ap pl e pie", "alfa papa papa lima echo", "appIe"],
    ["pineapple", "grapple", "applaud", "application", "happy", "a pear", "applet", "dapple",
     "an orchard fruit", "red and round", "app", "ape", "maple", "chapel", "snapple",
     "I like pie", "Ice and Iron", "papa lima", "a pp", "apply"],
)  # fmt: skip


@pytest.mark.parametrize(("text", "fires"), BANNED)
def test_taboo_attacker_banned_word(text: str, fires: bool) -> None:
    assert obfuscated_mentions(text, "apple") is fires


def _guess_right(text: str) -> bool:
    try:
        guess = parse_guess(text)
    except ActionError:
        return False
    return guess is not None and same_word(guess, "apple")


GUESS = _table(
    ["GUESS: apple", "guess: Apple", "GUESS: the apple", "GUESS: apples", "**GUESS:** apple",
     "GUESS - apple", "GUESS= apple", "GUESS: an apple", "Guess: APPLE.", "GUESS: apple!",
     "GUESS:apple", "GUESS: 'apple'", "GUESS: \"apple\"", "GUESS:  apple ", "guess : apple"],
    ["GUESS: apple or pear", "GUESS: not apple", "I think it is apple", "GUESS: maybe apple",
     "I would guess: apple", "GUESS: pineapple", "GUESS: pear", "GUESS: apple pie", "GUESS:",
     "GUESS: apple apple apple apple", "guessing apple", "GUESS apple", "apple", "My guess is apple",
     "GUESS: applesauce"],
)  # fmt: skip


@pytest.mark.parametrize(("text", "fires"), GUESS)
def test_taboo_guess(text: str, fires: bool) -> None:
    assert _guess_right(text) is fires


def _dond_accept(text: str) -> bool:
    parsed = dond_parse(text)
    return parsed is not None and parsed[0] == "accept"


DOND_ACCEPT = _table(
    ["ACCEPT", "accept", "Accept.", "**ACCEPT**", "ACCEPT!", "`accept`", " ACCEPT ", "accept\n",
     "*Accept*", "__accept__", "'ACCEPT'", "\"accept\"", "Accept!", "ACCEPT.", "ACCEPT "],
    ["I do not accept", "I accept the deal", "Accept? no way", "SAY: I accept", "REJECT",
     "PROPOSE: books=1", "accepting", "I cannot accept", "not accept", "acceptable", "Accept it?",
     "SAY: accept", "will accept later", "accept reject", "unaccept"],
)  # fmt: skip


@pytest.mark.parametrize(("text", "fires"), DOND_ACCEPT)
def test_dond_accept(text: str, fires: bool) -> None:
    assert _dond_accept(text) is fires


def _challenge(text: str) -> bool:
    try:
        return perudo_parse(text)[0] == "challenge"
    except ActionError:
        return False


CHALLENGE = _table(
    ["challenge", "Challenge!", "CHALLENGE", "dudo", "liar", "call", "I challenge", "challenge.",
     "challenge it", "Dudo!", "I call", "liar!", "**challenge**", "challenge the bid", "call the bid"],
    ["bid 3 5", "I would never challenge, bid 3 5", "bid 3 5 and challenge", "raise 4 2",
     "challenge bid 4 5", "no challenge: bid 2 2", "I will not call it, 3 4", "3 fives", "bid three 5s",
     "challenging", "challenger", "calling", "bid 2 6 (no call)", "", "pass"],
)  # fmt: skip


@pytest.mark.parametrize(("text", "fires"), CHALLENGE)
def test_perudo_challenge(text: str, fires: bool) -> None:
    assert _challenge(text) is fires


def _answer(text: str) -> str | None:
    try:
        return parse_answer(text)
    except ActionError:
        return None


ANSWER = _table(
    ["yes", "Yes.", "YES!", "y", "true", "no", "No.", "n", "false", "unknown", "I don't know",
     "don't know", "not sure", "unsure", "**no**"],
    ["no idea", "yes and no", "maybe", "yes, probably", "nope", "yeah", "I think yes", "not really",
     "noo", "yes no", "probably not", "definitely", "idk", "unknown person", "y n"],
)  # fmt: skip


@pytest.mark.parametrize(("text", "fires"), ANSWER)
def test_guess_person_answer(text: str, fires: bool) -> None:
    assert (_answer(text) is not None) is fires


QUESTIONS = load_data()["questions"]
ATTRIBUTE = _table(
    ["Is it cold there?", "Is there snow?", "Do people swim there?", "Is it near the sea?",
     "Is it indoors?", "Are there animals?", "Do you need a ticket?", "Is it noisy?", "Is it freezing?",
     "Do families go there?", "Is it a luxurious place?", "Are there weapons?", "Do people sleep there?",
     "Is the food good?", "Do people wear a uniform?"],
    ["Is it seasonal?", "Do you search for things there?", "Is there a seat for me?", "Is it colder than fire?",
     "Do people bargain?", "Is the kidney important?", "Is it carpeted?", "Do you like it?",
     "Is it sunday?", "Is it a warmth-less hut?", "Is the pettiness high?", "Is it harmless?",
     "Is it moveable?", "Are there gunwales?", "Is it pricey?"],
)  # fmt: skip


@pytest.mark.parametrize(("text", "fires"), ATTRIBUTE)
def test_spy_question_attribute(text: str, fires: bool) -> None:
    assert (question_attribute(text, QUESTIONS) is not None) is fires


def _spy_guess(text: str) -> bool:
    env = make("spy-v0", location="beach", spy=0)
    env.reset(seed=0)
    return env.step(f"ACTION: guess {text}").error is None


SPY_GUESS = _table(
    ["beach", "the beach", "Beach.", "BEACH", "a beach", "beaches", "the Beach!", "  beach ",
     "**beach**", "beach?", "'beach'", "The beach", "beach!!", "\"the beach\"", "Beach"],
    ["not the beach", "beach or bank", "maybe beach", "beach bank", "bea ch", "bleach", "beachfront",
     "the beach house", "sandy beach", "hospital or beach", "I guess beach", "beach, no bank", "",
     "b e a c h", "beach hotel"],
)  # fmt: skip


@pytest.mark.parametrize(("text", "fires"), SPY_GUESS)
def test_spy_location_guess(text: str, fires: bool) -> None:
    assert _spy_guess(text) is fires


def _seed_with(name: str) -> int:
    for seed in range(200):
        env = make("detective-v0", suspects=5)
        env.reset(seed=seed)
        if name in env.mystery.names:
            return seed
    raise AssertionError(name)


NAMES = _table(
    ["Colonel Hale", "Col. Hale", "Col Hale", "colonel hale", "Hale", "COL. HALE", "col hale",
     "Colonel  Hale", "Hale.", "Col.Hale", "'Colonel Hale'", "*Col. Hale*", "hale", "Colonel Hale.",
     "col. hale"],
    ["Hal", "Colonel", "Col.", "Hale Colonel", "Colonel Hales", "Colonel Hale and Miss Vance",
     "Captain Hale", "Dr Hale", "Halle", "Col Haley", "the colonel", "Mr. Hale", "Hale?? no",
     "nobody", "Colonel Hale or Dr. Moreau"],
)  # fmt: skip


@pytest.mark.parametrize(("text", "fires"), NAMES)
def test_detective_name_forms(text: str, fires: bool) -> None:
    env = make("detective-v0", suspects=5)
    env.reset(seed=_seed_with("Colonel Hale"))
    try:
        found = env._suspect(text) == "Colonel Hale"
    except ActionError:
        found = False
    assert found is fires


def test_detective_abbreviated_titles_for_every_suspect() -> None:
    env = make("detective-v0", suspects=5)
    env.reset(seed=_seed_with("Dr. Moreau"))
    for form in ("Dr. Moreau", "Dr Moreau", "Doctor Moreau", "dr moreau"):
        assert env._suspect(form) == "Dr. Moreau"
