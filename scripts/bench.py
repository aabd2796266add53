"""`make bench`: figures for the simulator and the training loop, printed (no timed assertions)."""
from __future__ import annotations

import argparse
import os
import resource
import time
from pathlib import Path

import torch
import yaml

from oscsim.config import CONF_DIR
from oscsim.dataset import simulate
from oscsim.params import SimulationParams

# Where the reference figure comes from: not this script; measured side by side with it (issue 12).
LAB_MEDIAN_IPS = 75
LAB_REFERENCE = ("lab's trainer: 62-80 it/s, median 75, measured on the 2-core CPU by a reviewer on 2026-11-28 "
                 "(issue 12): Batch 1 config, one thread, plotting off, first 20 iterations excluded, five runs "
                 "alternating with this script; it is not measured here")


def bench_simulator(name: str, repeats: int = 3) -> None:
    p = SimulationParams.from_mapping(yaml.safe_load((CONF_DIR / "simulation" / f"{name}.yaml").read_text()))
    times = []
    for _ in range(repeats):
        t0 = time.process_time()
        ds = simulate(p)
        times.append(time.process_time() - t0)
    print(f"simulate {name}: {p.n_frames + 1} frames, CPU time best {min(times):.3f} s "
          f"(of {repeats}: {', '.join(f'{t:.3f}' for t in times)}), activity rank {ds.summary['activity_rank']}")


def bench_real_network(n_frames: int = 1000, repeats: int = 3) -> None:
    """CPU time of one n_frames simulation of E. coli core (Michaelis-Menten, driven boundary species): the
    Euler integration of one trajectory with its drive; the dataset (two trajectories, summary) after it."""
    from hydra import compose, initialize_config_dir

    from oscsim.config import simulation_params
    from oscsim.dataset import build, forcing
    from oscsim.dynamics import Kinetics, initial_concentrations, integrate

    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        p = simulation_params(compose("config", ["simulation=e_coli_core", f"simulation.n_frames={n_frames}"]))
    simulate(p)  # warm-up: first calls load libraries
    one, whole = [], []
    for _ in range(repeats):
        t0 = time.process_time()
        net = build(p)
        c0 = initial_concentrations(p.n_metabolites, p.seed, p.concentration_min, p.concentration_max)
        integrate(Kinetics(net), c0, p.n_frames, p.delta_t, forced=forcing(net, p, p.seed, c0))
        one.append(time.process_time() - t0)
        t0 = time.process_time()
        simulate(p)
        whole.append(time.process_time() - t0)
    print(f"simulate e_coli_core (72 species, 70 reactions, Michaelis-Menten, 20 driven): {n_frames} frames in "
          f"{min(one):.3f} s CPU (best of {repeats}: network, drive, integration); the dataset (training and "
          f"held-out trajectories, summary) {min(whole):.3f} s")


def augmentation_for(iterations: int) -> float:
    """data_augmentation_loop that gives `iterations` on rank_50 (2,880 frames, batches of 8; the lab's 0.2)."""
    return iterations * 8 / (2880 * 0.2)


def bench_training(iterations: int, threads: int, compile_: bool) -> float:
    """Iterations per second of the Batch 1 baseline (faithful model, rank_50) over `iterations`."""
    import tempfile

    from hydra import compose, initialize_config_dir

    from oscsim import train as T

    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = compose("config", overrides=["model=faithful", "loss=default", f"threads={threads}", f"compile={str(compile_).lower()}",
                                           "progress=false", "plots=false", "tensorboard=false", "n_epochs=1",
                                           f"data_augmentation_loop={augmentation_for(iterations):.6f}",
                                           "rollout_frames=10", f"eval_every={iterations}"])
    with tempfile.TemporaryDirectory() as d:
        m = T.train(cfg, Path(d))
    return m["iterations_per_second"], m["iterations"]


def bench_error_scale(iterations: int, threads: int, repeats: int = 3) -> dict[str, list[float]]:
    """Iterations per second of the default model on rank_50 (uncompiled) with errors as measured and with k's
    gradient weighted (relative_k, the default), alternating so both see the same machine state."""
    import tempfile

    from hydra import compose, initialize_config_dir

    from oscsim import train as T

    out: dict[str, list[float]] = {"absolute": [], "relative_k": []}
    for _ in range(repeats):
        for scale in out:
            with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
                cfg = compose("config", overrides=[f"error_scale={scale}", f"threads={threads}", "compile=false",
                                                   "progress=false", "plots=false", "tensorboard=false",
                                                   f"data_augmentation_loop={augmentation_for(iterations):.6f}",
                                                   "rollout_frames=10", f"eval_every={iterations}"])
            with tempfile.TemporaryDirectory() as d:
                out[scale].append(T.train(cfg, Path(d))["iterations_per_second"])
    return out


def bench_batched(n_models: int, differ: str, aug: float, threads: int, compile_: str = "false") -> tuple[float, float]:
    """Wall seconds of one model, then of n_models trained as one batch (the default model on rank_50):
    `seeds` (seeds 1..n) or `configs` (seed 1, learning rates and coefficients differ); both with compile=compile_
    (auto: each as the default decides, which at 7,200 iterations compiles the batch and not the single model)."""
    import tempfile

    from hydra import compose, initialize_config_dir

    from oscsim import train as T

    base = [f"threads={threads}", "progress=false", "plots=false", "tensorboard=false",
            f"compile={compile_}", f"data_augmentation_loop={aug}"]
    variants = {"seeds": [[f"seed={s}"] for s in range(1, n_models + 1)],
                "configs": [["seed=1", f"lr_k={0.005 * (1 + i)}", f"lr_node={0.001 * (1 + i % 2)}",
                             f"coeff_MLP_sub_diff={5.0 * (i % 3)}"] for i in range(n_models)]}[differ]
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfgs = [compose("config", overrides=base + v) for v in variants]
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        T.train(cfgs[0], Path(d) / "one")
        one = time.perf_counter() - t0
        t0 = time.perf_counter()
        T.train_many(cfgs, [Path(d) / str(i) for i in range(n_models)])
        many = time.perf_counter() - t0
    return one, many


# One training run of a checked-out revision, in its own process (the revision's own oscsim): prints its it/s and R².
_ONE_RUN = """
import sys, tempfile
from pathlib import Path
import torch
from hydra import compose, initialize_config_dir
from oscsim.config import CONF_DIR
from oscsim import train as T
model, comp, it, aug, data = sys.argv[1:6]
torch.set_num_threads(1)
extra = ["model=faithful", "loss=default"] if model == "faithful" else []
with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
    cfg = compose("config", overrides=extra + ["threads=1", f"compile={comp}", "progress=false", "plots=false",
        "tensorboard=false", "n_epochs=1", f"data_augmentation_loop={aug}", "rollout_frames=10", f"eval_every={it}",
        f"data_dir={data}"])
with tempfile.TemporaryDirectory() as d:
    m = T.train(cfg, Path(d))
print(m["iterations_per_second"], m["rate_constants_R2"])
"""


def bench_compare(revisions: list[str], rounds: int, models: list[str]) -> None:
    """Training speed of git revisions side by side: each revision's src/ and conf/ checked out into a temporary
    folder, one run at a time in its own process, alternating revisions, `rounds` times (eager 3,000 iterations,
    compiled 6,000; one thread; the repository's dataset cache). Machine states drift: compare within a round."""
    import subprocess
    import sys
    import tempfile

    root = Path(__file__).resolve().parent.parent
    with tempfile.TemporaryDirectory() as tmp:
        trees = {}
        for rev in revisions:
            tree = Path(tmp) / rev
            tree.mkdir()
            archive = subprocess.run(["git", "-C", str(root), "archive", rev, "src", "conf"], check=True,
                                     capture_output=True).stdout
            subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
            trees[rev] = tree
        results: dict[tuple, list[str]] = {}
        for _ in range(rounds):
            for model in models:
                for comp, its in (("false", 3000), ("true", 6000)):
                    for rev, tree in trees.items():
                        out = subprocess.run([sys.executable, "-c", _ONE_RUN, model, comp, str(its), f"{augmentation_for(its):.6f}",
                                              str(root / "data")],
                                             cwd=tree, env={**os.environ, "PYTHONPATH": str(tree / "src")},
                                             check=True, capture_output=True, text=True).stdout.split()
                        ips, r2 = float(out[-2]), float(out[-1])
                        results.setdefault((model, comp, rev), []).append(f"{ips:.0f}")
                        print(f"{rev} {model} compile={comp}: {ips:.0f} it/s, rate_constants_R2 {r2:.4f}", flush=True)
    for (model, comp, rev), v in results.items():
        print(f"{model:9s} compile={comp:5s} {rev:10s} {' / '.join(v)} it/s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--regime", default="oscillatory_rank_50")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--iterations", type=int, default=3000)
    ap.add_argument("--batched", action="store_true", help="only the batched-trials figures (5 seeds, 4 configurations, "
                                                          "7,200 iterations each)")
    ap.add_argument("--only", choices=("seeds", "configs"), default=None, help="with --batched: one of the two figures")
    ap.add_argument("--compile", nargs="?", const="true", default="false", choices=("false", "true", "auto"),
                    help="with --batched: compile=false (the default here), true (--compile: the single run and the "
                         "batch) or auto (what a run gets by default: at 7,200 iterations the batch compiles, one "
                         "model does not)")
    ap.add_argument("--error-scale", action="store_true", help="only the default model's it/s with error_scale "
                                                              "absolute vs relative_k (3 runs each, alternating)")
    ap.add_argument("--compare", nargs="+", metavar="REV", default=None,
                    help="only the training speed of these git revisions side by side (e.g. 5390a13 HEAD)")
    ap.add_argument("--rounds", type=int, default=3, help="with --compare: runs of each revision, alternating")
    ap.add_argument("--models", nargs="+", default=["faithful"], choices=("faithful", "default"),
                    help="with --compare: the Batch 1 baseline (faithful) and/or the default model")
    args = ap.parse_args()
    if args.compare:
        return bench_compare(args.compare, args.rounds, args.models)
    torch.set_num_threads(args.threads)
    if args.error_scale:
        for scale, ips in bench_error_scale(args.iterations, args.threads).items():
            print(f"default model, rank_50, error_scale={scale}: {args.iterations} iterations, threads={args.threads}, "
                  f"uncompiled: {', '.join(f'{v:.0f}' for v in ips)} it/s")
        return
    if args.batched:
        for n, differ in ((5, "seeds"), (4, "configs")):
            if args.only not in (None, differ):
                continue
            one, many = bench_batched(n, differ, 100, args.threads, args.compile)
            print(f"batched: {n} {differ} (default model, rank_50, 7,200 iterations each, threads={args.threads}, "
                  f"compile={args.compile}): "
                  f"{many:.1f} s vs {one:.1f} s for one = {many / one:.2f}x the wall time ({n * one / many:.2f}x the "
                  f"throughput of separate runs)")
        return
    bench_simulator(args.regime)
    bench_real_network()
    for threads in (1, 2):
        for compile_ in (False, True):
            ips, n = bench_training(args.iterations, threads, compile_)
            print(f"train Batch 1 baseline (faithful, rank_50): {n} iterations, threads={threads}, "
                  f"compile={compile_}: {ips:.0f} it/s ({ips / LAB_MEDIAN_IPS:.1f}x the lab's trainer's median)")
    print(f"reference: {LAB_REFERENCE}")
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
