"""Stand-in judges that read real answers, for the judge card's tests and benches (no model needed).

A stand-in judge scores each answer by what it sees in the text (its share of Cyrillic letters, its
length, some structure), each judge with its own weights, position bias and noise, so two stand-in
judges disagree the way two real judges do. Verdicts are deterministic (the noise is a hash).

- `StandinJudge.records(...)`: judgment records as gen_judgment.py writes them, for given answers;
- `StandinJudge.prompt_verdict(...)`: the same judge behind FakeServer, reading both answers from the prompt;
- `judgebench_judge(...)`: a JudgeBench judge that sees which answer is labelled better on a given share of
  the pairs and guesses (with a position bias) on the rest, behind FakeServer.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

LABELS = ("A>>B", "A>B", "A=B", "B>A", "B>>A")
LETTER = re.compile(r"[^\W\d_]")
CYRILLIC = re.compile("[\u0400-\u04ff]")
START_A, END_A = "<|The Start of Assistant A's Answer|>\n", "\n<|The End of Assistant A's Answer|>"
START_B, END_B = "<|The Start of Assistant B's Answer|>\n", "\n<|The End of Assistant B's Answer|>"


def answer_text(record: dict[str, Any]) -> str:
    turn = record["choices"][0]["turns"][0]
    return turn["content"] if isinstance(turn, dict) else str(turn)


def noise(*key: str) -> float:
    """Deterministic logistic noise from a hash of the key."""
    u = (int.from_bytes(hashlib.sha256("|".join(key).encode()).digest()[:8], "big") + 0.5) / 2**64
    return math.log(u / (1 - u))


def label_of(advantage_of_a: float) -> str:
    """A verdict from how much better Assistant A looks (in logits)."""
    if advantage_of_a > 2.0:
        return "A>>B"
    if advantage_of_a > 0.5:
        return "A>B"
    if advantage_of_a >= -0.5:
        return "A=B"
    return "B>A" if advantage_of_a >= -2.0 else "B>>A"


@lru_cache(maxsize=20_000)
def features(text: str) -> tuple[float, float, float]:
    """(share of letters that are Cyrillic, log(1 + characters / 4), 1 if it has a header or list else 0)."""
    letters = len(LETTER.findall(text))
    cyrillic = len(CYRILLIC.findall(text)) / letters if letters else 0.0
    structured = any(line.lstrip().startswith(("#", "-", "*", "1.")) for line in text.splitlines())
    return cyrillic, math.log1p(len(text) / 4), float(structured)


def both_answers(prompt: str) -> tuple[str, str]:
    """Assistant A's and B's answers as the project's test template shows them."""
    first = prompt.split(START_A, 1)[1].split(END_A, 1)[0]
    second = prompt.split(START_B, 1)[1].split(END_B, 1)[0]
    return first, second


@dataclass(frozen=True)
class StandinJudge:
    """What this judge likes (weights on Cyrillic share, log length and structure), how much it favours the
    answer shown first, and how noisy it is."""

    name: str
    cyrillic: float = 2.0
    length: float = 0.6
    structure: float = 0.3
    position_bias: float = 0.3  # logits added to Assistant A
    noise_scale: float = 1.0

    def quality(self, text: str) -> float:
        cyrillic, log_length, structured = features(text)
        return self.cyrillic * cyrillic + self.length * log_length + self.structure * structured

    def verdict(self, first: str, second: str) -> str:
        """The label this judge gives when `first` is shown as Assistant A and `second` as B."""
        key = hashlib.sha256(f"{first}\x00{second}".encode()).hexdigest()
        advantage = self.quality(first) - self.quality(second) + self.position_bias
        return label_of(advantage + self.noise_scale * noise(self.name, key))

    def prompt_verdict(self, prompt: str) -> str:
        return self.verdict(*both_answers(prompt))

    def records(self, answers: dict[str, dict[Any, dict[str, Any]]], models: list[str], baseline: str,
                question_ids: list[Any]) -> dict[str, list[dict[str, Any]]]:
        """{model: judgment records} against `baseline`, both games, as gen_judgment.py stores them."""
        out: dict[str, list[dict[str, Any]]] = {}
        for model in models:
            records = []
            for qid in question_ids:
                mine, base = answer_text(answers[model][qid]), answer_text(answers[baseline][qid])
                games = [{"user_prompt": f"question {qid}", "judgment": "", "score": self.verdict(base, mine)},
                         {"user_prompt": f"question {qid}", "judgment": "", "score": self.verdict(mine, base)}]
                records.append({"question_id": qid, "model": model, "judge": self.name, "baseline": baseline,
                                "games": games})
            out[model] = records
        return out


def judgebench_judge(answers: dict[str, dict[Any, dict[str, Any]]], labels: dict[str, str], right_share: float,
                     position_bias: float = 0.0, unreadable_share: float = 0.0,
                     seed: str = "jb") -> Callable[[str], str | None]:
    """A verdict function for FakeServer on a JudgeBench bench (labels: question id -> "A>B" / "B>A", A meaning
    response_A). Like a real judge it either sees which answer is right or does not: on `right_share` of the
    pairs it prefers the labelled answer in both games; on the others it guesses each game, picking Assistant A
    with probability 1/2 + `position_bias`. `unreadable_share` of replies carry no verdict."""
    whose = {answer_text(record).strip(): (model, str(qid)) for model, records in answers.items()
             for qid, record in records.items()}

    def verdict(prompt: str) -> str | None:
        first = both_answers(prompt)[0].strip()
        model_a, qid = whose[first]
        key = hashlib.sha256(prompt.encode()).hexdigest()
        if _uniform(seed, "unreadable", key) < unreadable_share:
            return None
        if _uniform(seed, "sees", qid) < right_share:
            better = "response_A" if labels[qid] == "A>B" else "response_B"
            a_wins = model_a == better
        else:
            a_wins = _uniform(seed, "guess", key) < 0.5 + position_bias
        strong = _uniform(seed, "strong", key) < 0.5
        return ("A>>B" if strong else "A>B") if a_wins else ("B>>A" if strong else "B>A")

    return verdict


def _uniform(*key: str) -> float:
    return (int.from_bytes(hashlib.sha256("|".join(key).encode()).digest()[:8], "big") + 0.5) / 2**64
