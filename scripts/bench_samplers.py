"""`make bench-samplers`: does the UCB tree earn its keep? UCB tree, TPE and random search, 3 sampler seeds each,
the same number of trials on a reduced budget (the lab's faithful model on rank_50, short trials); prints the
best rate_constants_R2 reached after 8, 16 and 24 trials. Resumable: studies live in
multirun/bench_samplers/<sampler>_seed<n>.db and a rerun continues them."""
from __future__ import annotations

import argparse
import json
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

SPACE = {  # the lab's knobs at a fixed training budget per trial
    "lr_k": "tag(log, interval(1e-4, 1e-2))",
    "lr_node": "tag(log, interval(1e-4, 1e-2))",
    "lr_sub": "tag(log, interval(1e-4, 1e-2))",
    "batch_size": "choice(4, 8, 16)",
    "coeff_MLP_sub_diff": "choice(0, 1, 5, 10, 50)",
    "coeff_MLP_node_L1": "choice(0.0, 0.1, 1.0, 10.0)",
    "coeff_MLP_sub_norm": "choice(0.0, 0.1, 1.0, 10.0)",
    "coeff_k_floor": "choice(0.0, 0.1, 1.0, 10.0)",
    "k_floor_threshold": "choice(-3.0, -2.5, -2.0)",
    "hidden_dim_sub": "choice(32, 64, 128)",
}
SAMPLERS = ("ucb_tree", "tpe", "random")
CHECKPOINTS = (8, 16, 24)
ROOT = Path("multirun/bench_samplers")


def one_study(sampler: str, seed: int, n_trials: int, aug: float, fixed: list[str]) -> list[float | None]:
    """Run (or resume) one study in this process; returns rate_constants_R2 per trial in order."""
    from hydra import compose, initialize_config_dir

    from oscsim.config import CONF_DIR, simulation_params
    from oscsim.sweep.runner import Outcome, SweepRunner, SweepSettings
    from oscsim.train import train

    base_overrides = ["model=faithful", "loss=default", f"data_augmentation_loop={aug}", "threads=1", "progress=false",
                      "plots=false", "tensorboard=false", "compile=false", "rollout_frames=200", *fixed]
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        base_cfg = compose("config", overrides=base_overrides)

        def launch(jobs: list[list[str]], numbers: list[int]):
            outs = []
            for job in jobs:
                cfg = compose("config", overrides=job)
                try:
                    with tempfile.TemporaryDirectory() as d:
                        outs.append(Outcome(train(cfg, Path(d))))
                except Exception as e:  # a crashed configuration is a failed trial
                    outs.append(Outcome(None, f"{type(e).__name__}: {e}"))
            return outs

        settings = SweepSettings(sampler=sampler, study_name=f"{sampler}_seed{seed}",
                                 storage=f"sqlite:///{ROOT.resolve()}/{sampler}_seed{seed}.db", n_trials=n_trials, n_parallel=4,
                                 seed=seed, objectives=["rate_constants_R2"], directions=["maximize"], params=SPACE,
                                 first_batch_params=["lr_k", "lr_node", "lr_sub"], heartbeat_interval=None)
        base = {k: base_cfg[k] for k in base_cfg if not hasattr(base_cfg[k], "keys")}
        runner = SweepRunner(settings, base, base_overrides, ROOT / settings.study_name, "simulation_oscillatory_rank_50",
                             simulation_params(base_cfg).digest())
        study = runner.run(launch)
    trials = sorted(study.trials, key=lambda t: t.number)
    return [t.values[0] if t.values else None for t in trials]


def best_after(values: list[float | None], n: int) -> float:
    seen = [v for v in values[:n] if v is not None]
    return max(seen) if seen else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--trials", type=int, default=24)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--aug", type=float, default=30, help="data_augmentation_loop per trial (30: 2,160 iterations)")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--out", type=Path, default=ROOT / "results.json")
    args = ap.parse_args()
    ROOT.mkdir(parents=True, exist_ok=True)
    tasks = [(s, seed) for s in SAMPLERS for seed in range(args.seeds)]
    with ProcessPoolExecutor(args.jobs) as pool:
        futures = {t: pool.submit(one_study, t[0], t[1], args.trials, args.aug, []) for t in tasks}
        results = {f"{s}/{seed}": f.result() for (s, seed), f in futures.items()}
    args.out.write_text(json.dumps(results, indent=2))
    lines = [f"Best rate_constants_R2 after n trials (mean ± std over {args.seeds} sampler seeds; faithful model, "
             f"rank_50, data_augmentation_loop={args.aug:g} per trial)", "",
             "| sampler | " + " | ".join(f"after {n}" for n in CHECKPOINTS) + " | per seed after 24 |",
             "|---|" + "---|" * (len(CHECKPOINTS) + 1)]
    for s in SAMPLERS:
        cells = []
        for n in CHECKPOINTS:
            b = [best_after(results[f"{s}/{seed}"], n) for seed in range(args.seeds)]
            cells.append(f"{np.mean(b):.3f} ± {np.std(b):.3f}")
        last = ", ".join(f"{best_after(results[f'{s}/{seed}'], CHECKPOINTS[-1]):.3f}" for seed in range(args.seeds))
        lines.append(f"| {s} | " + " | ".join(cells) + f" | {last} |")
    table = "\n".join(lines)
    print(table)
    (ROOT / "table.md").write_text(table + "\n")


if __name__ == "__main__":
    main()
