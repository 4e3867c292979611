"""The verdict echo check's shortcuts give what the plain definitions give.

The whitespace squash (runs of whitespace as one space, or one line break if the run holds one)
and the echo check (a copy searched in the stretches of our prompt around the label instead of
the whole prompt) are compared with straightforward versions on many random texts.
"""

from __future__ import annotations

import random
import re

from arenajudge import verdicts

_SPACES = re.compile(r"[ \t\r\f\v]+")
_BREAKS = re.compile(r" ?\n[ \n]*")


def plain_squash(text: str) -> str:
    return _BREAKS.sub("\n", _SPACES.sub(" ", text))


def plain_is_echo(ours: str, left: str, label: str, right: str) -> bool:
    """is_echo searching the whole of `ours` every time."""
    if label not in ours:
        return False
    k_left = verdicts._longest(lambda k: left[len(left) - k:] + label in ours, len(left))
    lead = left[len(left) - k_left:]
    k_right = verdicts._longest(lambda k: lead + label + right[:k] in ours, len(right))
    if k_left + k_right >= verdicts.ECHO_CHARS or "\n" in lead:
        return True
    return len(lead.strip()) >= verdicts._ECHO_LEAD and ("\n" + lead.lstrip() + label) in "\n" + ours


def test_squash_is_the_plain_definition():
    rng = random.Random(16)
    for i in range(40_000):
        alphabet = "ab \t\r\n\f\v\xa0\u2009" if i % 2 else "a   \n\n"
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 30)))
        assert verdicts._squash(text) == plain_squash(text), repr(text)
    padded = "Ответ:" + " " * 5000 + "\n \n\t\n" + "конец  \n"  # real answers hold runs this long
    assert verdicts._squash(padded) == plain_squash(padded) == "Ответ:\nконец\n"


def test_echo_check_is_the_plain_definition():
    rng = random.Random(13)
    echoes = 0
    for _ in range(40_000):
        alphabet = rng.choice(["ab", "ab \n", "abc\n "])
        ours = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 120)))
        label = rng.choice(["a", "ab", "ba", "[[A>B]]", "", "b\na"])
        if rng.random() < 0.5:
            at = rng.randint(0, len(ours))
            ours = ours[:at] + label + ours[at:]
        source = ours if rng.random() < 0.7 else "".join(rng.choice(alphabet) for _ in range(80))
        start = rng.randint(0, len(source))
        end = rng.randint(start, len(source))
        left = source[max(0, start - rng.randint(0, 60)):start]
        right = source[end:end + rng.randint(0, 60)]
        expected = plain_is_echo(ours, left, label, right)
        assert verdicts.is_echo(ours, left, label, right) == expected, (ours, left, label, right)
        echoes += expected
    assert 5_000 < echoes < 35_000  # both answers were exercised


def test_a_label_copied_from_our_prompt_is_not_a_verdict():
    pattern = re.compile(r"\[(\[?[AB<>=ab]+\]?)\]")
    ours = "End with one label:\n- Assistant A is much better: [[A>>B]]\n- About the same: [[A=B]]\n" + "слово " * 900
    copied = "As asked:\n- Assistant A is much better: [[A>>B]]\n"
    assert verdicts.parse_own_verdict(copied, pattern, ours) == (None, False)
    assert verdicts.parse_own_verdict(copied + "My verdict: [[A=B]]", pattern, ours) == ("A=B", True)
    # asked again (a game reads its replies twice), the same answer
    assert verdicts.parse_own_verdict(copied + "My verdict: [[A=B]]", pattern, ours) == ("A=B", True)
