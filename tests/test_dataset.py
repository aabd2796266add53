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
