"""CI executes the analysis notebook on a tiny study and fails if a cell fails."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))


def test_notebook_runs_on_a_tiny_study(tmp_path, monkeypatch):
    from run_notebook import run

    r = subprocess.run([sys.executable, "-m", "oscsim.train", "-m", "sweep=ucb", "simulation=tiny", "data_augmentation_loop=5",
                        "~hydra.sweeper.params.data_augmentation_loop", "hydra.sweeper.n_trials=4", "progress=false",
                        "compile=false", "threads=1", "tensorboard=false", f"data_dir={tmp_path / 'data'}"],
                       capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    monkeypatch.setenv("OSCSIM_STUDY", "tiny_ucb")
    monkeypatch.setenv("OSCSIM_STORAGE", f"sqlite:///{tmp_path}/multirun/oscsim.db")
    monkeypatch.setenv("OSCSIM_SWEEP_DIR", str(tmp_path / "multirun" / "tiny_ucb"))
    nb = run(ROOT / "notebooks" / "analyze_study.ipynb", tmp_path / "out.ipynb")
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert "study tiny_ucb: 4 trials, 4 log entries" in text
    assert "best iteration" in text
    images = sum(1 for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if "image/png" in o.get("data", {}))
    assert images >= 3  # R² per iteration, the tree, and the best trial's figures
