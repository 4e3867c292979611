"""What a record was computed from: short, stable fingerprints, and the rule that checks them.

A fingerprint is the first 12 hex digits of a SHA-256. Settings are hashed as canonical JSON
(`json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))`, UTF-8); texts,
which are long, as each text's UTF-8 byte length (8 bytes, big-endian) followed by its bytes
(unambiguous, and about twice as fast as JSON on Cyrillic text). A fingerprint depends only on
the value, never on file order, time or machine. What each one covers:

- question: the question's turn texts (`turns[i].content`, or the plain string), in order.
- answer: the stored turn texts of the answer's first choice (`choices[0].turns[i].content`),
  the texts the judge is shown (thinking is stored apart and never part of them).
- judge settings (arena-hard): system_prompt, prompt_template (the list), regex_pattern, temperature,
  max_tokens, pairwise, reference and ref_model. MT-Bench adds mode, reference_categories and the judge
  prompts used (name -> system prompt and template) instead of system_prompt/prompt_template.
- generation settings: the served model name, the system prompt actually sent, the temperature used for
  the question (category_temperature included), max_tokens and num_choices.

Records written by arena-hard-local (or by versions before these fields) carry no `provenance`:
they are "unverified" and load as before; only a `baseline` they name is checked.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterable, Iterator, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from arenajudge.records.storage import turn_text

FINGERPRINT_HEX = 12


def fingerprint(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:FINGERPRINT_HEX]


def texts_fingerprint(texts: Iterable[str]) -> str:
    digest = hashlib.sha256()
    for text in texts:
        data = text.encode("utf-8")
        digest.update(len(data).to_bytes(8, "big"))
        digest.update(data)
    return digest.hexdigest()[:FINGERPRINT_HEX]


def question_fingerprint(question: dict[str, Any]) -> str:
    return texts_fingerprint(turn_text(t) for t in question["turns"])


def answer_fingerprint(record: dict[str, Any]) -> str:
    return texts_fingerprint(turn_text(t) for t in record["choices"][0]["turns"])


def judge_settings_fingerprint(config: Any, prompts: dict[str, Any] | None = None) -> str:
    """The judge config's settings that change verdicts (a JudgeConfig; `prompts`: MT-Bench's JudgePrompts)."""
    settings: dict[str, Any] = {
        "regex_pattern": config.regex_pattern.pattern, "temperature": config.temperature,
        "max_tokens": config.max_tokens, "pairwise": config.pairwise, "reference": config.reference,
        "ref_model": config.ref_model,
    }
    if prompts is None:
        settings |= {"system_prompt": config.system_prompt, "prompt_template": list(config.prompt_template)}
    else:
        settings |= {"mode": config.mode, "reference_categories": list(config.reference_categories),
                     "prompts": {n: [p.system_prompt, p.prompt_template] for n, p in sorted(prompts.items())}}
    if getattr(config, "structured_verdicts", False):  # only when on: judgments made before the key existed still count
        settings["structured_verdicts"] = True
    return fingerprint(settings)


def generation_fingerprint(model_name: str, system_prompt: str, temperature: float, max_tokens: int,
                           num_choices: int) -> str:
    return fingerprint({"model_name": model_name, "system_prompt": system_prompt, "temperature": temperature,
                        "max_tokens": max_tokens, "num_choices": num_choices})


# ---------------------------------------------------------------- checking judgments

# Why a judgment does not count, in the words of the `note:` line and the archive.
REASONS = {
    "question_removed": "on questions no longer in question.jsonl",
    "baseline": "against another baseline",
    "settings": "made with other judge settings",
    "question_changed": "on questions whose text changed",
    "answer_changed": "on answers that changed since (regenerated)",
    "answer_missing": "on answers no longer on disk",
}


@dataclass
class Basis:
    """What judgments must have been computed from to count now.

    `questions` maps question_id (as str) to its fingerprint (None: not checked, e.g. no
    question.jsonl); `answers` maps model -> question_id (str) -> answer fingerprint;
    `settings` is the judge settings fingerprint (None: not checked, as in show_result,
    which does not know the judge config a file was made with).
    """

    baseline: str
    questions: dict[str, str] | None
    answers: MutableMapping[str, MutableMapping[str, str]]  # overlap.py adds answers as they arrive
    settings: str | None = None
    references: dict[str, str] | None = None  # question_id -> reference answer fingerprint

    def mismatch(self, record: dict[str, Any], model: str) -> str | None:
        """The REASONS key for which `record` (a judgment of `model`) no longer counts, or None."""
        qid = str(record["question_id"])
        if self.questions is not None and qid not in self.questions:
            return "question_removed"
        named = record.get("baseline")
        if named and named != self.baseline:
            return "baseline"
        # arena-hard-local's records carry no provenance: unverified, counted as before
        return self.provenance_mismatch(record, [("answer", model), ("baseline_answer", self.baseline)])

    def provenance_mismatch(self, record: dict[str, Any], answers: list[tuple[str, str]]) -> str | None:
        """The REASONS key for which `record`'s provenance (if any) no longer matches; `answers` pairs each
        provenance key with the model whose current answer it must match."""
        made = record.get("provenance")
        if not isinstance(made, dict):
            return None
        qid = str(record["question_id"])
        if self.settings is not None and made.get("judge_settings") != self.settings:
            return "settings"
        if self.questions is not None and made.get("question") != self.questions[qid]:
            return "question_changed"
        for key, who in answers:
            current = self.answers.get(who, {}).get(qid)
            if current is None:
                return "answer_missing"
            if made.get(key) != current:
                return "answer_changed"
        if self.references is not None and made.get("reference") != self.references.get(qid):
            return "settings"
        return None


def mtbench_mismatch(record: dict[str, Any], basis: Basis) -> str | None:
    """Basis.mismatch for MT-Bench records (FastChat's shape: `model`, or `model_1` and `model_2`).

    Records without provenance (FastChat's) count as before, unless their question is gone."""
    qid = str(record["question_id"])
    if basis.questions is not None and qid not in basis.questions:
        return "question_removed"
    models = [("answer", record.get("model"))] if "model" in record else [("answer_1", record.get("model_1")),
                                                                           ("answer_2", record.get("model_2"))]
    return basis.provenance_mismatch(record, [(key, str(model)) for key, model in models])


class _AnswerPrints(MutableMapping[str, str]):
    """One model's answer fingerprints by question_id (str), computed when first asked for:
    boards over arena-hard-local's files (no provenance) never pay for them. A fingerprint set
    directly (run_eval's overlapped judge, as answers arrive) replaces the record's."""

    def __init__(self, records: dict[Any, dict[str, Any]]) -> None:
        self._records: dict[str, dict[str, Any] | None] = {str(qid): r for qid, r in records.items()}
        self._prints: dict[str, str] = {}

    def __getitem__(self, qid: str) -> str:
        if qid not in self._prints:
            record = self._records[qid]
            if record is None:
                raise KeyError(qid)
            self._prints[qid] = answer_fingerprint(record)
        return self._prints[qid]

    def __setitem__(self, qid: str, value: str) -> None:
        self._records[qid] = None
        self._prints[qid] = value

    def __delitem__(self, qid: str) -> None:
        del self._records[qid]
        self._prints.pop(qid, None)

    def __iter__(self) -> Iterator[str]:
        return iter(self._records)

    def __len__(self) -> int:
        return len(self._records)


def answer_fingerprints(answers: dict[str, dict[Any, dict[str, Any]]]) -> dict[str, MutableMapping[str, str]]:
    return {model: _AnswerPrints(by_q) for model, by_q in answers.items()}


@dataclass
class Selection:
    """Judgments that count now, and a tally of those left out (by REASONS key)."""

    kept: dict[str, list[dict[str, Any]]]
    left_out: Counter[str] = field(default_factory=Counter)
    other_baselines: set[str] = field(default_factory=set)
    unverified: int = 0  # kept records without provenance (arena-hard-local's format)

    def note(self, judge: str) -> str | None:
        total = sum(self.left_out.values())
        if not total:
            return None
        return (f"note: left out {total} judgments by {judge} that do not match what is on disk now: "
                f"{reasons_words(self.left_out, self.other_baselines)}" + rerun_hint(self.left_out))


def reasons_words(left_out: Counter[str], other_baselines: Iterable[str] = ()) -> str:
    """'10 on answers that changed since (regenerated), 2 against another baseline (gpt-4)': the board's note
    words for a tally of REASONS keys (the browser says its left-out judgments with them too)."""
    parts = []
    for key, words in REASONS.items():
        if n := left_out.get(key):
            extra = f" ({', '.join(sorted(other_baselines))})" if key == "baseline" and other_baselines else ""
            parts.append(f"{n} {words}{extra}")
    return ", ".join(parts)


def rerun_hint(left_out: Counter[str]) -> str:
    """Advice for a left-out note: judging again helps unless the questions are simply gone."""
    return "; rerun gen_judgment.py to judge them again" if set(left_out) - {"question_removed"} else ""


def judgment_reasons(judgments: dict[str, list[dict[str, Any]]], basis: Basis
                     ) -> Iterator[tuple[str, str, dict[str, Any], str | None]]:
    """Each record of {file model: [records]} as (file model, judged model, record, REASONS key or None if it counts)."""
    for file_model, records in judgments.items():
        for record in records:
            model = record.get("model") or file_model
            yield file_model, model, record, basis.mismatch(record, model)


def select_judgments(judgments: dict[str, list[dict[str, Any]]], basis: Basis) -> Selection:
    """The judgments that were computed from what `basis` says is current (show_result, browser, --compare)."""
    selection = Selection(kept={file_model: [] for file_model in judgments})
    for file_model, _, record, reason in judgment_reasons(judgments, basis):
        if reason is None:
            selection.kept[file_model].append(record)
            selection.unverified += not isinstance(record.get("provenance"), dict)
        else:
            selection.left_out[reason] += 1
            if reason == "baseline":
                selection.other_baselines.add(str(record.get("baseline")))
    return selection


def unverified_words(count: int) -> str:
    """The board header's words for judgments without provenance."""
    return f"{count} judgments unverified (no provenance recorded, as in arena-hard-local's files)"


def question_fingerprints(questions: Iterable[dict[str, Any]]) -> dict[str, str]:
    return {str(q["question_id"]): question_fingerprint(q) for q in questions}


def board_basis(baseline: str, questions: list[dict[str, Any]] | None,
                answers: dict[str, dict[Any, dict[str, Any]]]) -> Basis:
    """What a leaderboard counts: questions in question.jsonl now (None: no file, not checked), judgments
    against `baseline`, made on the answers on disk now. Judge settings are not checked here."""
    return Basis(baseline=baseline, questions=question_fingerprints(questions) if questions is not None else None,
                 answers=answer_fingerprints(answers))
