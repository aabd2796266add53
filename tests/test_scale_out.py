"""Several workers, killed workers, resume, and the launchers that scale a sweep out.

Tests that need PostgreSQL read its URL from OSCSIM_TEST_POSTGRES_URL; without it they skip, unless
OSCSIM_REQUIRE_POSTGRES=1 (set by .ci/run), where a missing server is a failure."""
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import optuna
import pytest

from oscsim.sweep.experiment_log import parse_log

FAST = ["simulation=tiny", "~hydra.sweeper.params.data_augmentation_loop", "plots=false", "progress=false",
        "tensorboard=false", "compile=false", "threads=1"]
Complete, Fail = optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.FAIL


@pytest.fixture
def pg_url():
    url = os.environ.get("OSCSIM_TEST_POSTGRES_URL")
    if not url:
        if os.environ.get("OSCSIM_REQUIRE_POSTGRES"):
            pytest.fail("OSCSIM_REQUIRE_POSTGRES is set but OSCSIM_TEST_POSTGRES_URL is not")
        pytest.skip("no PostgreSQL server: set OSCSIM_TEST_POSTGRES_URL (CI starts one)")
    return url


def command(tmp_path: Path, *args: str, aug: int = 5) -> list[str]:
    return [sys.executable, "-m", "oscsim.train", "-m", "sweep=ucb", *FAST, f"data_augmentation_loop={aug}",
            f"data_dir={tmp_path / 'data'}", *args]


def run(tmp_path: Path, *args: str, aug: int = 5) -> subprocess.CompletedProcess:
    r = subprocess.run(command(tmp_path, *args, aug=aug), capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    return r


def check_log(sweep_dir: Path, study: optuna.Study) -> list[dict]:
    entries = parse_log((sweep_dir / f"{study.study_name}_analysis.md").read_text())
    iters = [e["iter"] for e in entries]
    assert len(iters) == len(set(iters)) == len([t for t in study.trials if t.state != optuna.trial.TrialState.WAITING])
    return entries


def _open_at_once(url: str, barrier, results) -> None:
    from oscsim.sweep.study import open_storage

    barrier.wait()  # every worker creates the new database's tables at the same moment
    try:
        optuna.create_study(storage=open_storage(url, heartbeat_interval=60, grace_period=120), study_name="shared",
                            load_if_exists=True)
        results.put("ok")
    except Exception as e:
        results.put(f"{type(e).__name__}: {e}")


def test_workers_starting_one_new_sqlite_study_at_once_all_open_it(tmp_path):
    # Without the retry in open_storage every one of 5 tries failed: "table studies already exists",
    # "UNIQUE constraint failed: alembic_version.version_num" (RDBStorage creates its schema without a lock).
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    url, n = f"sqlite:///{tmp_path}/new/oscsim.db", 6
    barrier, results = ctx.Barrier(n), ctx.Queue()
    workers = [ctx.Process(target=_open_at_once, args=(url, barrier, results)) for _ in range(n)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=300)
    outcomes = [results.get(timeout=5) for _ in range(n)]
    assert outcomes == ["ok"] * n, outcomes
    assert [s.study_name for s in optuna.get_all_study_summaries(url)] == ["shared"]


def test_schema_race_is_told_from_a_real_failure():
    from oscsim.sweep.study import schema_race

    assert schema_race("table studies already exists")
    assert schema_race("UNIQUE constraint failed: alembic_version.version_num")
    assert schema_race('duplicate key value violates unique constraint "pg_type_typname_nsp_index"')
    assert not schema_race("unable to open database file")
    assert not schema_race('password authentication failed for user "oscsim"')


@pytest.mark.xdist_group("postgres")  # one worker, in turn: the outage test stops this server (Makefile: --dist loadgroup)
def test_two_workers_share_one_postgres_study(tmp_path, pg_url):
    name = f"two_workers_{uuid.uuid4().hex[:8]}"
    args = [f"hydra.sweeper.storage={pg_url}", f"hydra.sweeper.study_name={name}", "hydra.sweeper.n_trials=8",
            "hydra.sweeper.n_parallel=2"]
    run(tmp_path, *args, "hydra.sweeper.n_trials=1", "hydra.sweeper.n_parallel=1")  # creates study and dataset
    workers = [subprocess.Popen(command(tmp_path, *args), cwd=tmp_path, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True) for _ in range(2)]
    errs = [w.communicate(timeout=600)[1] for w in workers]
    assert all(w.returncode == 0 for w in workers), errs[0][-2000:] + errs[1][-2000:]
    study = optuna.load_study(study_name=name, storage=pg_url)
    assert sorted(t.number for t in study.trials) == list(range(8))
    assert all(t.state == Complete for t in study.trials)
    entries = check_log(tmp_path / "multirun" / name, study)
    assert [e["iter"] for e in entries] == list(range(1, 9))
    for t in study.trials:  # each trial ran once, in its own directory
        saved = json.loads((tmp_path / "multirun" / name / f"iter_{t.number + 1}" / "metrics.json").read_text())
        assert saved["rate_constants_R2"] == pytest.approx(t.values[0])


def kill_mid_trial_then_resume(tmp_path: Path, storage: str, name: str) -> optuna.Study:
    args = [f"hydra.sweeper.storage={storage}", f"hydra.sweeper.study_name={name}", "hydra.sweeper.n_trials=3",
            "hydra.sweeper.n_parallel=1", "hydra.sweeper.n_iter_block=3", "hydra.sweeper.heartbeat_interval=1",
            "hydra.sweeper.grace_period=3"]
    worker = subprocess.Popen(command(tmp_path, *args, aug=150), cwd=tmp_path, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 600  # generous: on a loaded machine the worker's start alone takes minutes
    reached = False
    while time.time() < deadline and not reached:  # wait for one finished trial and a second one running
        time.sleep(0.5)
        try:
            trials = optuna.load_study(study_name=name, storage=storage).trials
        except Exception:  # no database or study yet
            continue
        reached = any(t.state == Complete for t in trials) and any(t.state == optuna.trial.TrialState.RUNNING for t in trials)
    if not reached:
        os.killpg(worker.pid, signal.SIGKILL)
        pytest.fail("the worker did not finish one trial and start the next within 600 s")
    time.sleep(1.0)
    os.killpg(worker.pid, signal.SIGKILL)
    worker.wait()
    first_done = [t.number for t in optuna.load_study(study_name=name, storage=storage).trials if t.state == Complete]
    metrics_before = {n: (tmp_path / "multirun" / name / f"iter_{n + 1}" / "metrics.json").read_text() for n in first_done}
    time.sleep(4)  # past the grace period: the killed trial's heartbeat is stale
    run(tmp_path, *args, aug=150)
    study = optuna.load_study(study_name=name, storage=storage)
    for n, text in metrics_before.items():  # completed trials and their files are intact
        assert (tmp_path / "multirun" / name / f"iter_{n + 1}" / "metrics.json").read_text() == text
    return study


def assert_retried_and_completed(study: optuna.Study) -> None:
    failed = [t for t in study.trials if t.state == Fail]
    assert len(failed) == 1
    retries = [t for t in study.trials if t.system_attrs.get("failed_trial") == failed[0].number]
    assert len(retries) == 1 and retries[0].state == Complete
    assert retries[0].params == failed[0].params  # retried as it was
    assert sum(t.state == Complete for t in study.trials) == 3


def test_killed_sweeper_resumes_and_retries_its_trial(tmp_path):
    storage = f"sqlite:///{tmp_path}/multirun/oscsim.db"
    study = kill_mid_trial_then_resume(tmp_path, storage, "killed")
    assert_retried_and_completed(study)
    check_log(tmp_path / "multirun" / "killed", study)


@pytest.mark.xdist_group("postgres")
def test_killed_worker_on_postgres(tmp_path, pg_url):
    name = f"killed_{uuid.uuid4().hex[:8]}"
    study = kill_mid_trial_then_resume(tmp_path, pg_url, name)
    assert_retried_and_completed(study)


def test_joblib_launcher_runs_a_batch_in_parallel_processes(tmp_path):
    r = run(tmp_path, "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "hydra.sweeper.n_trials=2",
            "hydra.sweeper.n_parallel=2", "hydra.sweeper.n_iter_block=2")
    assert "Joblib.Parallel(n_jobs=2" in r.stdout + r.stderr
    study = optuna.load_study(study_name="tiny_ucb", storage=f"sqlite:///{tmp_path}/multirun/oscsim.db")
    assert [t.state for t in study.trials] == [Complete, Complete]
    check_log(tmp_path / "multirun" / "tiny_ucb", study)


def test_submitit_local_launcher_end_to_end(tmp_path):
    run(tmp_path, "hydra/launcher=submitit_local", "hydra.launcher.timeout_min=10", "hydra.sweeper.n_trials=2",
        "hydra.sweeper.n_parallel=2", "hydra.sweeper.n_iter_block=2")
    study = optuna.load_study(study_name="tiny_ucb", storage=f"sqlite:///{tmp_path}/multirun/oscsim.db")
    assert [t.state for t in study.trials] == [Complete, Complete]
    assert list((tmp_path / "multirun" / "tiny_ucb" / ".submitit").rglob("*_result.pkl"))
    check_log(tmp_path / "multirun" / "tiny_ucb", study)
