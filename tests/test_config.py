import subprocess
import sys

import pytest
from omegaconf import OmegaConf

from oscsim.cli import precheck
from oscsim.config import simulation_params, validate
from oscsim.params import ConfigError


def _error_line(capsys, argv):
    with pytest.raises(SystemExit) as e:
        precheck("config", argv)
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    return err


@pytest.mark.parametrize(
    "override, needle",
    [
        ("simulation.n_metabolites=2", "simulation.n_metabolites=2: must be >= cycle_length (3)"),
        ("simulation.delta_t=0", "simulation.delta_t=0: must be > 0"),
        ("simulation.delta_t=-0.1", "simulation.delta_t=-0.1: must be > 0"),
        ("simulation.log_k_min=0", "simulation.log_k_min=0: must be <= log_k_max"),
        ("simulation.n_frames=9", "simulation.n_frames=9: must be >= 10"),
        ("simulation=nope", "simulation=nope: unknown option (allowed: e_coli_core, observed, oscillatory_mixed, oscillatory_rank_20"),
        ("not_a_key=1", "not_a_key: unknown key"),
        ("lr_k=-0.001", "lr_k=-0.001: must be > 0"),
        ("batch_size=0", "batch_size=0: must be an integer >= 1"),
        ("n_layers_sub=1", "n_layers_sub=1: must be an integer >= 2"),
    ],
)
def test_bad_settings_one_line(capsys, override, needle):
    assert needle in _error_line(capsys, [override])


def test_sweep_values_are_each_checked(capsys):
    assert "lr_k=-1: must be > 0" in _error_line(capsys, ["lr_k=0.002,-1"])
    precheck("config", ["lr_k=0.002,0.005"])  # both fine: returns


def test_compose_every_regime(compose_config):
    for name in ("oscillatory_rank_50", "oscillatory_rank_20", "oscillatory_rank_70", "tiny"):
        cfg = compose_config(f"simulation={name}")
        validate(cfg)
        assert simulation_params(cfg).name == name
    cfg = compose_config()
    assert cfg.simulation.n_metabolites == 100 and cfg.simulation.n_reactions == 256


def test_validate_raises_config_error_directly(compose_config):
    with pytest.raises(ConfigError, match="lr_sub=0"):
        validate(compose_config("lr_sub=0"))


def test_cli_rejects_before_any_work(tmp_path):
    r = subprocess.run([sys.executable, "-m", "oscsim.simulate", "simulation.delta_t=0", f"data_dir={tmp_path}"],
                       capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 2
    assert r.stderr.strip() == "error: simulation.delta_t=0: must be > 0"
    assert not any(tmp_path.iterdir())  # nothing generated, no run directory


SWEEPS = ["ucb", "ucb_guided", "tpe", "gp", "random", "ucb_seeds", "lab_batches"]


def test_slurm_example_launcher_composes_with_one_gpu_per_job(compose_config):
    cfg = compose_config("sweep=ucb", "hydra/launcher=slurm_gpu", hydra=True)
    assert cfg.hydra.launcher._target_.endswith("SlurmLauncher")
    assert cfg.hydra.launcher.gpus_per_node == 1 and cfg.hydra.launcher.array_parallelism == 4
    assert cfg.hydra.sweeper.sampler == "ucb_tree" and cfg.hydra.sweeper.n_parallel == 4


@pytest.mark.parametrize("sweep", SWEEPS)
def test_every_sweep_config_shares_the_common_block(compose_config, sweep):
    cfg = compose_config(f"sweep={sweep}", "simulation=tiny", hydra=True)
    assert cfg.hydra.sweeper._target_ == "hydra_plugins.oscsim_sweeper.sweeper.OscsimOptunaSweeper"
    assert OmegaConf.to_container(cfg.hydra.sweep) == {"dir": "multirun/${hydra.sweeper.study_name}",
                                                       "subdir": "iter_${sweep_trial.iter}"}
    assert cfg.hydra.sweep.dir == f"multirun/{cfg.hydra.sweeper.study_name}"


def test_sweep_configs_keep_their_studies_apart(compose_config):
    names = {s: compose_config(f"sweep={s}", "simulation=tiny", hydra=True).hydra.sweeper.study_name for s in SWEEPS}
    assert len(set(names.values())) == len(SWEEPS), names  # no two sweep kinds resume each other's study
    assert names["gp"] == "tiny_gp"


def test_sweep_ucb_guided_sets_the_measured_tree_options(compose_config):
    cfg = compose_config("sweep=ucb_guided", hydra=True)
    sw = cfg.hydra.sweeper
    assert (sw.sampler, sw.ucb_guide, sw.ucb_first_batch) == ("ucb_tree", "gp", "cover")
    assert list(sw.first_batch_params) == ["lr_k", "lr_node", "lr_sub"] and sw.study_name.endswith("_ucb_guided")


def test_ucb_rerun_root_is_a_sweeper_override(compose_config):
    assert compose_config("sweep=ucb", hydra=True).hydra.sweeper.ucb_rerun_root is True  # the lab's rule by default
    cfg = compose_config("sweep=ucb", "hydra.sweeper.ucb_rerun_root=false", hydra=True)
    assert cfg.hydra.sweeper.ucb_rerun_root is False
