"""The verdict echo check: its fast whitespace squash gives what the plain definition gives.

The squash (runs of whitespace as one space, or one line break if the run holds one) is compared
with a straightforward version on many random texts; a copied label is still no verdict.
"""

from __future__ import annotations

import random
import re

from arenajudge.core import verdicts

_SPACES = re.compile(r"[ \t\r\f\v]+")
_BREAKS = re.compile(r" ?\n[ \n]*")


def plain_squash(text: str) -> str:
    return _BREAKS.sub("\n", _SPACES.sub(" ", text))


def test_squash_is_the_plain_definition():
    rng = random.Random(16)
    for i in range(40_000):
        alphabet = "ab \t\r\n\f\v\xa0\u2009" if i % 2 else "a   \n\n"
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 30)))
        assert verdicts._squash(text) == plain_squash(text), repr(text)
    padded = "Ответ:" + " " * 5000 + "\n \n\t\n" + "конец  \n"  # real answers hold runs this long
    assert verdicts._squash(padded) == plain_squash(padded) == "Ответ:\nконец\n"


def test_a_label_copied_from_our_prompt_is_not_a_verdict():
    pattern = re.compile(r"\[(\[?[AB<>=ab]+\]?)\]")
    ours = "End with one label:\n- Assistant A is much better: [[A>>B]]\n- About the same: [[A=B]]\n" + "слово " * 900
    copied = "As asked:\n- Assistant A is much better: [[A>>B]]\n"
    assert verdicts.parse_own_verdict(copied, pattern, ours) == (None, False)
    assert verdicts.parse_own_verdict(copied + "My verdict: [[A=B]]", pattern, ours) == ("A=B", True)
    # asked again (a game reads its replies twice), the same answer
    assert verdicts.parse_own_verdict(copied + "My verdict: [[A=B]]", pattern, ours) == ("A=B", True)
