import json
import warnings

import numpy as np
import pytest

from oscsim import dataset as dsmod
from oscsim.dataset import dataset_dir, load_or_simulate


def test_cache_is_reused(tmp_path, tiny, monkeypatch):
    first = load_or_simulate(tiny, tmp_path)
    assert first.path == dataset_dir(tiny, tmp_path) and (first.path / "summary.json").exists()
    summary = json.loads((first.path / "summary.json").read_text())
    assert summary["n_frames"] == 300 and summary["n_unidentifiable"] == len(summary["unidentifiable"])

    def boom(*a, **k):
        raise AssertionError("simulated again although the cache was valid")

    monkeypatch.setattr(dsmod, "simulate", boom)
    second = load_or_simulate(tiny, tmp_path)
    assert np.array_equal(first.concentrations, second.concentrations)
    assert np.array_equal(first.network.S, second.network.S)


def test_other_settings_other_directory(tmp_path, tiny):
    from conftest import regime

    assert dataset_dir(tiny, tmp_path) != dataset_dir(regime("tiny", delta_t=0.05), tmp_path)


@pytest.mark.parametrize("victim", ["concentrations.npy", "manifest.json", "summary.json"])
def test_truncated_file_is_regenerated_with_warning(tmp_path, tiny, victim):
    good = load_or_simulate(tiny, tmp_path)
    f = good.path / victim
    f.write_bytes(f.read_bytes()[: len(f.read_bytes()) // 2])
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        again = load_or_simulate(tiny, tmp_path)
    assert any("regenerating" in str(x.message) for x in w)
    assert np.array_equal(good.concentrations, again.concentrations)
    dsmod.load(again.path)  # the regenerated cache verifies


def test_no_temp_files_left(tmp_path, tiny):
    ds = load_or_simulate(tiny, tmp_path)
    assert not [p for p in ds.path.iterdir() if p.name.endswith(".tmp")]


def test_concurrent_generation_by_several_processes(tmp_path):
    """Workers that start at the same moment: one generates, the others wait and read the finished file."""
    import subprocess
    import sys

    script = (
        "import sys, hashlib; sys.path.insert(0, sys.argv[2]); from conftest import regime; "
        "from oscsim.dataset import load_or_simulate; ds = load_or_simulate(regime('oscillatory_rank_50'), sys.argv[1]); "
        "print(int(ds.generated), hashlib.sha256(ds.concentrations.tobytes()).hexdigest())"
    )
    tests_dir = str(__import__("pathlib").Path(__file__).parent)
    procs = [subprocess.Popen([sys.executable, "-c", script, str(tmp_path), tests_dir], stdout=subprocess.PIPE, text=True)
             for _ in range(4)]
    outs = [p.communicate(timeout=300)[0].split() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert sum(int(o[0]) for o in outs) == 1  # generated exactly once
    assert len({o[1] for o in outs}) == 1  # everyone read the same arrays
    (d,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    dsmod.load(d)  # complete and verified
