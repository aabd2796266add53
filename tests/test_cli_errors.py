"""Inputs a user gets wrong that only this machine can judge (oscsim.preflight): each stops the command
before any work with exit 2 and one line naming the key, and writes or loses nothing."""
from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import torch

FAST = ["simulation=tiny", "plots=false", "progress=false", "tensorboard=false"]


def run(command: str, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", f"oscsim.{command}", *FAST, *args], capture_output=True,
                          text=True, cwd=cwd)


def tree(root: Path) -> dict[str, tuple[int, int]]:
    """Every file under root with its size and modification time: what a failed command must leave as it was."""
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*")}


def one_line(r: subprocess.CompletedProcess) -> str:
    assert r.returncode == 2, r.stderr[-2000:]
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr[-2000:]
    return r.stderr.strip()


@pytest.fixture(scope="module")
def cached(tmp_path_factory) -> Path:
    """A directory holding the tiny dataset, cached by a good run."""
    root = tmp_path_factory.mktemp("cached")
    r = run("simulate", root, f"data_dir={root / 'data'}")
    assert r.returncode == 0, r.stderr[-2000:]
    return root


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_on_a_machine_without_it(cached: Path) -> None:
    before = tree(cached)
    r = run("train", cached, f"data_dir={cached / 'data'}", "device=cuda")
    assert one_line(r) == "error: device=cuda: CUDA is not available on this machine; must be auto or cpu here"
    assert tree(cached) == before  # no run directory, the cached dataset untouched


def test_model_too_large_says_how_much_memory_it_needs(cached: Path) -> None:
    before = tree(cached)
    r = run("train", cached, f"data_dir={cached / 'data'}", "hidden_dim_sub=1000000")
    # 1e12 parameters of MLP_sub's 1e6 x 1e6 layer, four float32 copies each: 14.6 TiB whatever the machine
    assert re.fullmatch(r"error: hidden_dim_sub=1000000: training would need about 14\.6 TiB \(1e\+12 parameters "
                        r"with gradients and Adam state, plus activations\) but (this machine|cuda:\d) has [\d.]+ "
                        r"[KMGT]?i?B free; must fit in memory \(here: hidden_dim_sub <= \d+\)", one_line(r))
    assert tree(cached) == before


@pytest.mark.parametrize("command", ["simulate", "train"])
def test_diverging_simulation(tmp_path: Path, command: str) -> None:
    r = run(command, tmp_path, f"data_dir={tmp_path / 'data'}", "simulation.delta_t=100")
    assert one_line(r) == ("error: simulation.delta_t=100: simulation diverged at frame 4 (non-finite "
                           "concentrations): lower simulation.delta_t=100 or simulation.log_k_max=-1.0")
    assert not any(tmp_path.iterdir())  # no dataset, no lock file, no run directory


def test_data_dir_under_a_file(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine\n")
    r = run("simulate", tmp_path, f"data_dir={tmp_path / 'notes.txt' / 'data'}")
    assert one_line(r) == (f"error: data_dir={tmp_path / 'notes.txt' / 'data'}: {tmp_path / 'notes.txt'} is a file, "
                           "not a directory; must be a directory you can write to")
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"] and (tmp_path / "notes.txt").read_text() == "mine\n"


def _writable(d: Path) -> bool:
    try:
        with tempfile.TemporaryFile(dir=d):
            return True
    except OSError:
        return False


def test_data_dir_without_write_permission(tmp_path: Path) -> None:
    locked = tmp_path / "ro"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if _writable(locked):  # root writes anywhere permissions allow nothing
            locked = Path("/sys")  # a read-only mount refuses even root
            if not locked.is_dir() or _writable(locked):
                pytest.skip("no directory this process cannot write to")
        work = tmp_path / "work"
        work.mkdir()
        r = run("train", work, f"data_dir={locked / 'data'}")
        assert one_line(r) == (f"error: data_dir={locked / 'data'}: cannot write in {locked} (Permission denied); "
                               "must be a directory you can write to")
        assert not any(work.iterdir()) and not (locked / "data").exists()
    finally:
        (tmp_path / "ro").chmod(0o700)


@pytest.mark.parametrize("override, line", [
    ("model.stoichiometry=nope", "error: model.stoichiometry=nope: must be one of given, learned"),
    ("model.exponent=cube", "error: model.exponent=cube: must be one of input, power, auto"),
    ("model.sto_gauge=max", "error: model.sto_gauge=max: must be one of none, median"),
    ("S_exponent_ramp=2", "error: S_exponent_ramp=2: must be in [0, 1]"),
    ("model.k_prior=-1", "error: model.k_prior=-1: must be >= 0"),
    ("lr_S=-1", "error: lr_S=-1: must be > 0, or null for lr_k"),
    ("coeff_S_integer=-0.1", "error: coeff_S_integer=-0.1: must be >= 0"),
])
def test_learned_stoichiometry_and_model_options(cached: Path, override: str, line: str) -> None:
    before = tree(cached)
    assert one_line(run("train", cached, f"data_dir={cached / 'data'}", override)) == line
    assert tree(cached) == before
