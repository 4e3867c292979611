"""MT-Bench pairwise: FastChat's win/loss/tie table beside the Bradley-Terry lines, equal to FastChat's
definitions (llm_judge/show_result.py) re-implemented plainly here, on judgments made through the stand-in server."""

from __future__ import annotations

import hashlib
import json

import pytest

from arenajudge.cli import gen_judgment
from arenajudge.cli.show_result import main
from arenajudge.core.errors import run_cli
from arenajudge.judge.mtbench_protocol import MTBenchPairwise
from arenajudge.records.storage import read_jsonl
from arenajudge_testkit.fake_openai import FakeServer, Script
from arenajudge_testkit.gen_project import Project, entry

MODELS = ["alpha", "beta", "gamma", "base"]


def noisy_pair_judge(messages: list[dict]) -> str:
    """A verdict from a hash of the conversation: A, B or C (tie), sometimes none; alpha's answers win more."""
    text = "\n".join(m["content"] for m in messages)
    h = hashlib.sha256(text.encode()).digest()
    if h[0] < 20:
        return "I cannot decide."
    shown_a = text.split("[Start of Assistant A's answer]")[-1][:40]
    if "alpha" in shown_a and h[1] < 100:
        return "A is better. [[A]]"
    return f"Verdict: [[{'ABC'[h[2] % 3]}]]"


def plain_fastchat(records: list[dict], baseline: str | None) -> dict[str, dict[str, float]]:
    """FastChat's display_result_pairwise, one record at a time: error (here also null) records left out; a win
    only when both games name the same winner, else a tie for both; the baseline's own row dropped."""
    tally: dict[str, list[int]] = {}
    for r in records:
        g1, g2 = r["g1_winner"], r["g2_winner"]
        if g1 in (None, "error") or g2 in (None, "error"):
            continue
        if baseline is not None and baseline not in (r["model_1"], r["model_2"]):
            continue
        for model in (r["model_1"], r["model_2"]):
            tally.setdefault(model, [0, 0, 0])
        if g1 == "tie" or g1 != g2:
            tally[r["model_1"]][2] += 1
            tally[r["model_2"]][2] += 1
        elif g1 == "model_1":
            tally[r["model_1"]][0] += 1
            tally[r["model_2"]][1] += 1
        else:
            tally[r["model_2"]][0] += 1
            tally[r["model_1"]][1] += 1
    out = {}
    for model, (win, loss, tie) in tally.items():
        if model == baseline:
            continue
        total = win + loss + tie
        out[model] = {"win": win, "loss": loss, "tie": tie, "win_rate": win / total, "loss_rate": loss / total,
                      "win_rate_adjusted": (win + 0.5 * tie) / total}
    return out


def printed_table(out: str) -> dict[str, dict[str, float]]:
    block = out.split("########## Pairwise")[1].splitlines()[1:]
    columns = block[0].split()
    assert columns == ["win", "loss", "tie", "win_rate", "loss_rate", "win_rate_adjusted"] and block[1].strip() == "model"
    rows = {}
    for line in block[2:]:
        if not line.strip() or line.startswith("note:"):
            break
        name, *values = line.split()
        rows[name] = dict(zip(columns, map(float, values), strict=True))
    return rows


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    p = Project(tmp_path, bench="mt_bench")
    questions = [{"question_id": 100 + i, "category": "writing", "turns": [f"First ask {i}", f"Then ask {i}"]}
                 for i in range(12)]
    p.write_questions(questions)
    for model in MODELS:
        path = p.bench_dir / "model_answer" / f"{model}.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(json.dumps({"question_id": q["question_id"], "model_id": model, "choices": [{"index": 0, "turns": [
            {"content": f"{model} says one thing to {q['question_id']}", "token_len": 10},
            {"content": f"{model} says another to {q['question_id']}", "token_len": 20}]}]}) + "\n" for q in questions))
    return p


@pytest.mark.parametrize("mode", ["pairwise-baseline", "pairwise-all"])
def test_fastchat_table_equals_its_definitions(project, capsys, mode):
    with FakeServer(Script(answer=noisy_pair_judge)) as server:
        project.write_api({"judge": entry(server.base_url, "j", parallel=8)})
        project.write_judge_config(MODELS if mode == "pairwise-all" else MODELS[:3], mode=mode, baseline_model="base")
        assert run_cli(gen_judgment.main, ["--quiet"]) == 0
    records = read_jsonl(project.bench_dir / "model_judgment" / "judge_pair.jsonl")
    assert any(r["g1_winner"] is None or r["g2_winner"] is None for r in records)  # some games without a verdict
    capsys.readouterr()
    assert main(["--bench-name", "mt_bench", "--judge-name", "judge", "--mode", mode, "--baseline", "base"]) == 0
    out = capsys.readouterr().out
    baseline = "base" if mode == "pairwise-baseline" else None
    want = plain_fastchat(records, baseline)
    got = printed_table(out)
    assert set(got) == set(want) == (set(MODELS[:3]) if baseline else set(MODELS))
    for model, numbers in want.items():
        assert got[model] == pytest.approx(numbers, abs=5e-7), model  # pandas prints 6 decimals
    order = [m for m in got]
    assert [want[m]["win_rate_adjusted"] for m in order] == sorted((want[m]["win_rate_adjusted"] for m in order),
                                                                   reverse=True)
    left_out = sum(r["g1_winner"] is None or r["g2_winner"] is None for r in records)
    assert f"note: {left_out} of {len(records)} records have a game without a verdict" in out
    assert "| score:" in out.split("########## Pairwise")[0]  # the Bradley-Terry lines stay, above the table
    frame, counted_out = MTBenchPairwise.fastchat_table(records, baseline)
    assert counted_out == left_out and list(frame.index) == order


def test_fastchat_table_reads_fastchat_error_records_and_keeps_only_the_baselines():
    records = [
        {"model_1": "a", "model_2": "base", "g1_winner": "model_1", "g2_winner": "model_1"},
        {"model_1": "a", "model_2": "base", "g1_winner": "tie", "g2_winner": "tie"},
        {"model_1": "a", "model_2": "base", "g1_winner": "model_2", "g2_winner": "model_1"},
        {"model_1": "a", "model_2": "base", "g1_winner": "error", "g2_winner": "model_1"},
        {"model_1": "b", "model_2": "base", "g1_winner": "model_2", "g2_winner": "model_2"},
        {"model_1": "a", "model_2": "b", "g1_winner": "model_1", "g2_winner": "model_1"},
    ]
    frame, left_out = MTBenchPairwise.fastchat_table(records, "base")
    assert left_out == 1 and list(frame.index) == ["a", "b"]
    assert frame.loc["a", ["win", "loss", "tie"]].tolist() == [1, 0, 2]
    assert frame.loc["a", "win_rate_adjusted"] == pytest.approx(2 / 3)
    assert frame.loc["b", ["win", "loss", "tie"]].tolist() == [0, 1, 0]
    every, _ = MTBenchPairwise.fastchat_table(records, None)
    assert every.loc["b", ["win", "loss", "tie"]].tolist() == [0, 2, 0] and "base" in every.index
    for model, numbers in plain_fastchat(records, None).items():
        assert every.loc[model].to_dict() == pytest.approx(numbers)
