"""`make bench-samplers`: do the samplers earn their keep on the real search?

Problem `lab` is the lab's own search (SPEC §10): the faithful model (MLP_node all_zero, the seed era) on
rank_50 with the lab's regularisers, the lab's knobs as the search space and the seed's Batch 1 baseline as the
root; every trial has the lab's length (data_augmentation_loop 1000, 72,000 iterations), or that scaled by
`--fraction` (shorter trials rank configurations poorly here: Spearman 0.30 at 0.1 and 0.48 at 0.2 of the
length over 12 configurations, `make bench-fidelity`). Each sampler (ucb_tree, ucb_tree+gp: the tree with its GP guide, tpe, gp, random) runs `--seeds` studies of `--trials` trials in batches of 4;
a batch is trained as one vectorised model (batched trials). Prints and writes, under
multirun/bench_samplers/<problem>_f<fraction>/: the best rate_constants_R2 after 8/16/24 trials (mean ± std over
sampler seeds), the trials each study needed to reach the milestones 0.5 and 0.69 (the lab: 14 and 21, full
length), results.json and a figure of best-so-far curves. `--full-reruns` reruns each study's best-so-far
configurations at full length (cached) and reports the milestones on those. Resumable: studies live in SQLite
files there, and a rerun continues them. After every batch each study is also written to
benchmarks/samplers/<problem>_f<fraction>/<study>.json (tracked): `--report` reads it for studies whose SQLite file
is not on the machine, and a run continues such a study from it (on another machine, say).

`tpe+cover+prior` (likewise `gp+`, `random+`; `+cover` alone without the prior) starts an Optuna sampler from the
first batch the tree (ARD guide, covering batch) plans for the same seed, so the two know the same by trial 4; on the
real problems those four results are read from the tree's records of that seed where they hold the same
configurations (training is deterministic per configuration), else trained.

`--report --paired-with S` adds each sampler minus S, seed by seed, at each checkpoint (mean ± standard error, seeds
better / worse); in a report a sampler written `NAME@TAG` is read from the study set of `--tag TAG` (`random@`: the
untagged one), so studies run apart can be paired.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import tempfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

LAB_SPACE = {  # the lab's knobs (SPEC §5, §10) at the lab's fixed training length
    "lr_k": "tag(log, interval(1e-4, 1e-2))",
    "lr_node": "tag(log, interval(1e-4, 1e-2))",
    "lr_sub": "tag(log, interval(1e-4, 1e-2))",
    "coeff_MLP_sub_diff": "choice(0, 1, 5, 10, 50)",
    "coeff_MLP_node_L1": "choice(0.0, 0.1, 1.0, 10.0)",
    "coeff_MLP_sub_norm": "choice(0.0, 0.1, 1.0, 10.0)",
    "coeff_k_floor": "choice(0.0, 0.1, 1.0, 10.0)",
    "k_floor_threshold": "choice(-3.0, -2.5, -2.0)",
    "seed": "choice(42, 1, 2, 3)",
}


DEFAULT_SPACE = {  # the default model's scalar knobs (each batch trains as one vectorised model)
    "lr_k": "tag(log, interval(1e-4, 1e-1))",
    "lr_node": "tag(log, interval(1e-4, 1e-2))",
    "lr_sub": "tag(log, interval(1e-5, 1e-2))",
    "coeff_MLP_sub_diff": "choice(0, 1, 5, 10, 50)",
    "coeff_MLP_node_L1": "choice(0.0, 0.1, 1.0)",
    "coeff_k_range": "choice(0.0, 0.1, 1.0, 10.0)",
    "seed": "choice(1, 2, 3, 4)",
}


@dataclass
class Problem:
    overrides: list[str]
    space: dict[str, str]
    aug: float  # the full-length data_augmentation_loop
    milestones: tuple[float, ...] = (0.5, 0.69)  # the lab's: R2 0.508 at trial 14, 0.690 at 21
    first_batch: list[str] = field(default_factory=lambda: ["lr_k", "lr_node", "lr_sub"])
    surrogate: bool = False  # trials are read off the ARD GP of the kept lab trials (a screen, not the benchmark)
    prior: str | None = None  # `+prior`: the kept studies of this other problem are the guide's prior (never its own)


PROBLEMS = {
    "lab": Problem(["model=faithful", "loss=default", "seed=42"], LAB_SPACE, 1000, prior="rank70_3600_f1"),
    # The default model where its settings matter: rank_70 on a budget of 3,600 iterations a trial (a fixed
    # budget is the problem, so every trial is full length). Errors as measured, as it was benchmarked (README)
    # before the default weighed them for k (error_scale=relative_k).
    "rank70_3600": Problem(["simulation=oscillatory_rank_70", "error_scale=absolute", "seed=1"], DEFAULT_SPACE, 50,
                           (0.6, 0.7), prior="lab_f1"),
    # The lab's search with every trial read off a model of the kept full-length lab trials (`lab_surrogate`): a
    # screen that runs a study in seconds, to try tree variants before confirming them on `lab`.
    "lab_surrogate": Problem(["model=faithful", "loss=default", "seed=42"], LAB_SPACE, 1000, surrogate=True,
                             prior="rank70_3600_f1"),
    "tiny": Problem(["simulation=tiny", "model=faithful", "loss=default", "seed=42"], LAB_SPACE, 10),  # a smoke run
}
SAMPLERS = ("ucb_tree", "tpe", "gp", "random")
CHECKPOINTS = (8, 16, 24)
ROOT = Path("multirun/bench_samplers")
RECORDS = Path("benchmarks/samplers")  # tracked: each finished study's trials (params, R2), one JSON file per study
SURROGATE = RECORDS / "lab_surrogate.json"  # the frozen training set and hyperparameters of `lab_surrogate`
FAST = ["threads=1", "progress=false", "plots=false", "tensorboard=false", "compile=false", "rollout_frames=200"]


def compose_all(overrides: list[list[str]]):
    from hydra import compose, initialize_config_dir

    from oscsim.config import CONF_DIR

    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        return [compose("config", overrides=o) for o in overrides]


def lab_surrogate(space: dict):
    """The ARD GP (sweep/surrogate.py) of every distinct configuration in the kept full-length lab records, frozen
    in SURROGATE at its first use so that later screens read off the same model; returns it and its noise sd."""
    from oscsim.sweep.surrogate import ARDGP, encode

    if not SURROGATE.exists():
        seen = {}
        for path in sorted((RECORDS / "lab_f1").glob("*.json")):
            for t in read_record(path)["trials"]:
                if t["R2"] is not None and np.isfinite(t["R2"]):
                    seen[json.dumps(t["params"], sort_keys=True)] = t["R2"]
        gp = ARDGP(np.stack([encode(space, json.loads(k)) for k in seen]), np.array(list(seen.values())))
        SURROGATE.write_text(json.dumps({"configs": [json.loads(k) for k in seen], "R2": list(seen.values()),
                                         "length_scales": dict(zip(space, gp.ell.tolist())), "noise": gp.noise},
                                        indent=1) + "\n")
    data = json.loads(SURROGATE.read_text())
    X = np.stack([encode(space, c) for c in data["configs"]])
    gp = ARDGP(X, np.array(data["R2"]), ell=np.array([data["length_scales"][k] for k in space]), noise=data["noise"])
    return gp, gp.scale * np.sqrt(gp.noise)


def surrogate_r2(gp, noise_sd: float, space: dict, config: dict, world: int) -> float:
    """The model's mean at the configuration plus a draw of its noise fixed by (configuration, world): the same
    configuration gives the same R2 within a study, as a seeded trial does."""
    from oscsim.sweep.surrogate import encode

    key = hashlib.sha1(f"{world}:{json.dumps(config, sort_keys=True)}".encode()).digest()
    eps = np.random.default_rng(int.from_bytes(key[:8], "little")).standard_normal()
    mu, _ = gp.predict(encode(space, config)[None])
    return float(min(1.0, mu[0] + noise_sd * eps))


def study_name(sampler: str, seed: int) -> str:
    """A study's name, its SQLite file's and its record's (ucb_tree+gp+cover seed 3: ucb_tree_gp_cover_seed3)."""
    return f"{sampler.replace('+', '_')}_seed{seed}"


def one_study(problem: str, sampler: str, seed: int, n_trials: int, fraction: float, out: Path) -> list[dict]:
    """Run (or resume) one study in this process; returns its trials in order: params and R^2 (None: failed)."""
    from oscsim.config import simulation_params
    from oscsim.sweep.runner import Outcome, SweepRunner, SweepSettings
    from oscsim.sweep.transfer import restore_study
    from oscsim.train import train_batch

    pb = PROBLEMS[problem]
    name = study_name(sampler, seed)
    base_overrides = [*pb.overrides, *FAST, f"data_augmentation_loop={pb.aug * fraction:g}"]
    (base_cfg,) = compose_all([base_overrides])
    from oscsim.sweep.space import parse_search_space

    space = parse_search_space(pb.space)[0]
    if pb.surrogate:
        gp, noise_sd = lab_surrogate(space)
    kind, *options = sampler.split("+")
    # tpe+cover+prior: an Optuna sampler whose first batch is the tree's (the prior's choice with +prior), so both
    # know the same by trial 4; a batch whose configurations this folder's records of the same seed already hold
    # (the tree's first batch) is read from them (training is deterministic per configuration)
    known = trained_results(out, seed) if kind != "ucb_tree" and "cover" in options and not pb.surrogate else []

    def launch(jobs: list[list[str]], numbers: list[int]) -> list[Outcome]:
        cfgs = compose_all([[o for o in job if not o.startswith("sweep_trial.")] for job in jobs])
        if pb.surrogate:
            return [Outcome({"rate_constants_R2": surrogate_r2(gp, noise_sd, space, {k: c[k] for k in space}, seed)})
                    for c in cfgs]
        found = [next((r2 for params, r2 in known if same_params(params, {k: c[k] for k in space})), False)
                 for c in cfgs]
        if known and all(r2 is not False for r2 in found):
            print(f"{name}: trials {numbers} read from this folder's records of seed {seed} (the same configurations)",
                  flush=True)
            return [Outcome({"rate_constants_R2": r2}) if r2 is not None else Outcome(None, "failed in the record")
                    for r2 in found]
        with tempfile.TemporaryDirectory() as d:
            try:
                results = train_batch([(c, Path(d) / str(n), None) for c, n in zip(cfgs, numbers)])
            except Exception as e:  # the batch crashed: every trial of it failed
                return [Outcome(None, f"{type(e).__name__}: {e}")] * len(jobs)
        return [Outcome(m) for m in results]

    # ucb_tree+gp+cover+fresh: the UCB tree with its GP guide, covering first batch, and no configuration trained twice;
    # +prior: the guide starts from the kept studies of another problem (pb.prior)
    guide = "gp_ard" if "ard" in options else "gp" if "gp" in options else "none"  # ucb_tree+ard: per-parameter length scales
    prior = [str(RECORDS / pb.prior)] if "prior" in options and pb.prior else []
    settings = SweepSettings(sampler=kind, ucb_guide=guide,
                             ucb_first_batch="cover" if "cover" in options else "lab",
                             ucb_rerun_root="fresh" not in options, ucb_exploit_beta=0.0 if "mean" in options else 1.0,
                             ucb_prior=prior if kind == "ucb_tree" else [],
                             study_name=name, storage=f"sqlite:///{out.resolve()}/{name}.db",
                             n_trials=n_trials, n_parallel=4, seed=seed, objectives=["rate_constants_R2"],
                             directions=["maximize"], params=pb.space, first_batch_params=pb.first_batch,
                             heartbeat_interval=60, grace_period=180)  # a killed run's trials are retried on resume
    base = {k: base_cfg[k] for k in base_cfg if not hasattr(base_cfg[k], "keys")}
    if kind != "ucb_tree" and "cover" in options:
        settings.enqueue = [{"id": f"tree_first_batch_{i}", "params": p}
                            for i, p in enumerate(tree_first_batch(space, base, settings, pb, prior))]
    record = record_path(out, name)
    if not (out / f"{name}.db").exists() and (carried := read_record(record)["study"]):
        # begun on another machine: continue from the trials its record carries
        restore_study(carried, name, settings.storage, settings.directions)
        print(f"{name}: restored {len(carried)} trials from {record}", flush=True)
    runner = SweepRunner(settings, base, base_overrides, out / name, f"bench_{problem}", simulation_params(base_cfg).digest())
    # a session may end any time (a screen's studies are not kept: they rerun in minutes)
    study = runner.run(launch, after_batch=None if pb.surrogate else lambda st: write_record(record, st))
    return [{"params": t.params, "R2": t.values[0] if t.values else None}
            for t in sorted(study.trials, key=lambda t: t.number)]


def tree_first_batch(space: dict, base: dict, settings, pb: Problem, prior: list[str]) -> list[dict]:
    """The covering first batch the tree (ARD guide, `cover`, and the prior's studies where given) plans for this
    seed: what `tpe+cover+prior` and the like start from (the benchmark maximises, so rewards are read as they are)."""
    from oscsim.sweep.study import make_sampler
    from oscsim.sweep.transfer import read_prior

    sampler = make_sampler("ucb_tree", space, {k: base.get(k) for k in space}, seed=settings.seed,
                           n_parallel=settings.n_parallel, n_iter_block=settings.n_iter_block, ucb_c=settings.ucb_c,
                           first_batch_params=pb.first_batch, ucb_guide="gp_ard", ucb_first_batch="cover",
                           ucb_prior=read_prior(prior) if prior else None)
    return sampler.first_batch()


def trained_results(out: Path, seed: int) -> list[tuple[dict, float | None]]:
    """(params, R2) of every trial in this folder's records of sampler seed `seed` (any sampler)."""
    folder = RECORDS / out.name
    return [(t["params"], t["R2"]) for path in sorted(folder.glob(f"*_seed{seed}.json"))
            for t in read_record(path)["trials"]]


def same_params(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(
        math.isclose(a[k], b[k], rel_tol=1e-12) if isinstance(a[k], float) or isinstance(b[k], float) else a[k] == b[k]
        for k in a)


def record_path(out: Path, name: str) -> Path:
    """Where a study's trials are kept in the repository (the SQLite files under multirun/ are not)."""
    return RECORDS / out.name / f"{name}.json"


def done_trials(study) -> list[dict]:
    """The study's finished trials in order, without the killed runs' trials that were retried: params and R^2."""
    retried = {t.system_attrs.get("failed_trial") for t in study.trials} - {None}
    done = [t for t in sorted(study.trials, key=lambda t: t.number) if t.state.is_finished() and t.number not in retried]
    return [{"params": t.params, "R2": t.values[0] if t.values else None} for t in done]


def write_record(path: Path, study) -> None:
    """The study as the repository keeps it: its trials for --report and, to resume it on another machine, its
    finished trials with what a restore needs (sweep/transfer.py). Written after every batch."""
    from oscsim.files import write_text
    from oscsim.sweep.transfer import study_to_json

    write_text(path, json.dumps({"trials": done_trials(study), "study": study_to_json(study)}, indent=1) + "\n")


def read_record(path: Path) -> dict:
    """A record: {"trials": [...], "study": [...]} (records written before studies were restorable are a bare
    list of trials, and carry no study)."""
    data = json.loads(path.read_text()) if path.exists() else []
    return {"trials": data, "study": []} if isinstance(data, list) else data


def finished_study(out: Path, sampler: str, seed: int, n_trials: int) -> list[dict] | None:
    """A study's trials in order, if it has finished n_trials (else None): from its SQLite file, or from its
    record in benchmarks/ when the file is not on this machine."""
    import optuna

    name = study_name(sampler, seed)
    if (out / f"{name}.db").exists():
        trials = done_trials(optuna.load_study(study_name=name, storage=f"sqlite:///{out.resolve()}/{name}.db"))
    else:
        trials = read_record(record_path(out, name))["trials"]
    return trials[:n_trials] if len(trials) >= n_trials else None


def best_so_far(values: list[float | None]) -> list[float]:
    best, out = float("-inf"), []
    for v in values:
        best = max(best, v if v is not None and np.isfinite(v) else float("-inf"))
        out.append(best)
    return out


def trials_to(curve: list[float], level: float) -> int | None:
    return next((i + 1 for i, v in enumerate(curve) if v >= level), None)


def milestone_cell(hits: list[int | None], n_trials: int) -> str:
    """'median M (h1, h2, ...)': the trials each seed needed to reach a milestone ('-': not reached) and their
    median, where a seed that never reached it counts as more than n_trials, so a median past them reads
    '> n_trials' (half the seeds or more did not get there in the trials run)."""
    med = np.median([h if h is not None else np.inf for h in hits])
    per_seed = ", ".join("-" if h is None else str(h) for h in hits)
    return f"median {med:g} ({per_seed})" if np.isfinite(med) else f"median > {n_trials} ({per_seed})"


def paired_lines(curves: dict[str, list[list[float]]], seeds: dict[str, list[int]], ref: str,
                 checkpoints: list[int]) -> list[str]:
    """Each sampler minus `ref` over the seeds both ran: mean difference of the best so far ± its standard error,
    and on how many seeds it is better / worse, at each checkpoint."""
    if ref not in curves:
        return ["", f"(no finished study of {ref} to pair with)"]
    by_seed = {s: dict(zip(seeds[s], runs)) for s, runs in curves.items()}
    lines = ["", f"Paired by seed, each sampler minus {ref}: mean ± standard error (seeds better / worse)", "",
             "| sampler | seeds | " + " | ".join(f"after {n}" for n in checkpoints) + " |",
             "|---|---|" + "---|" * len(checkpoints)]
    for s in curves:
        common = sorted(set(by_seed[s]) & set(by_seed[ref]))
        if s == ref or len(common) < 2:
            continue
        cells = []
        for n in checkpoints:
            d = np.array([by_seed[s][k][n - 1] - by_seed[ref][k][n - 1] for k in common])
            cells.append(f"{d.mean():+.3f} ± {d.std(ddof=1) / np.sqrt(len(d)):.3f} ({(d > 0).sum()} / {(d < 0).sum()})")
        lines.append(f"| {s} | {len(common)} | " + " | ".join(cells) + " |")
    return lines


def full_length_r2(problem: str, params_list: list[dict], cache: Path) -> list[float]:
    """rate_constants_R2 of each configuration at the lab's full length (cached by configuration)."""
    from oscsim.train import train_batch

    pb = PROBLEMS[problem]
    known = json.loads(cache.read_text()) if cache.exists() else {}
    keys = [hashlib.sha1(json.dumps(p, sort_keys=True).encode()).hexdigest()[:16] for p in params_list]
    todo = [(k, p) for k, p in dict(zip(keys, params_list)).items() if k not in known]
    for i in range(0, len(todo), 4):  # four at a time, as one vectorised model
        chunk = todo[i:i + 4]
        cfgs = compose_all([[*pb.overrides, *FAST, f"data_augmentation_loop={pb.aug:g}",
                             *(f"{k}={v}" for k, v in p.items())] for _, p in chunk])
        with tempfile.TemporaryDirectory() as d:
            results = train_batch([(c, Path(d) / str(j), None) for j, c in enumerate(cfgs)])
        for (k, _), m in zip(chunk, results):
            known[k] = m.get("rate_constants_R2")
        cache.write_text(json.dumps(known, indent=1))
    return [known[k] for k in keys]


def figure(curves: dict[str, list[list[float]]], path: Path, title: str, milestones: tuple[float, ...]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4))
    for sampler, runs in curves.items():
        n = min(len(r) for r in runs)  # a study resumed past its budget may hold a few more trials
        a = np.array([r[:n] for r in runs], dtype=float)
        a[~np.isfinite(a)] = np.nan
        x = np.arange(1, a.shape[1] + 1)
        mean, std = np.nanmean(a, 0), np.nanstd(a, 0)
        ax.plot(x, mean, label=f"{sampler} (n={len(runs)})")
        ax.fill_between(x, mean - std, mean + std, alpha=0.15)
    for level in milestones:
        ax.axhline(level, color="grey", lw=0.6, ls="--")
    ax.set_xlabel("trials")
    ax.set_ylabel("best rate_constants_R2 so far")
    ax.set_title(title, fontsize=8, wrap=True)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--problem", choices=sorted(PROBLEMS), default="lab")
    ap.add_argument("--samplers", nargs="+", default=list(SAMPLERS))
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--first-seed", type=int, default=0,
                    help="sampler seeds run are first-seed .. first-seed+seeds-1 (later seeds of a study set)")
    ap.add_argument("--trials", type=int, default=24)
    ap.add_argument("--fraction", type=float, default=1.0,
                    help="trial length as a fraction of the lab's (shorter trials rank poorly: make bench-fidelity)")
    ap.add_argument("--jobs", type=int, default=1, help="studies run at once (one process each)")
    ap.add_argument("--full-reruns", action="store_true", help="rerun best-so-far configurations at full length")
    ap.add_argument("--report", action="store_true", help="only tabulate the studies that have finished")
    ap.add_argument("--save-records", action="store_true",
                    help="with --report: write the records of the studies on this machine, finished or not (a run "
                         "writes them after every batch)")
    ap.add_argument("--tag", default="", help="suffix of the output folder (a variant measured apart)")
    ap.add_argument("--paired-with", metavar="SAMPLER",
                    help="with --report: each sampler minus this one, seed by seed, at each checkpoint")
    args = ap.parse_args()
    milestones = PROBLEMS[args.problem].milestones
    out = ROOT / f"{args.problem}_f{args.fraction:g}{args.tag}"
    out.mkdir(parents=True, exist_ok=True)
    seed_ids = range(args.first_seed, args.first_seed + args.seeds)
    tasks = [(s, seed) for seed in seed_ids for s in args.samplers]  # seed-major: partial runs compare
    if not args.report and any("@" in s for s in args.samplers):
        ap.error("--samplers NAME@TAG (a study set of another --tag) only with --report")
    if args.report:  # what has finished so far, without running anything
        def where(spec: str) -> tuple[Path, str]:  # `random@` reads the untagged folder, `x@_t` the folder of --tag _t
            name, at, tag = spec.partition("@")
            return (ROOT / f"{args.problem}_f{args.fraction:g}{tag}") if at else out, name

        results = {f"{s}/{seed}": r for s, seed in tasks if (r := finished_study(*where(s), seed, args.trials))}
    else:
        with ProcessPoolExecutor(args.jobs) as pool:
            futures = {t: pool.submit(one_study, args.problem, t[0], t[1], args.trials, args.fraction, out) for t in tasks}
            results = {f"{s}/{seed}": f.result() for (s, seed), f in futures.items()}
    (out / "results.json").write_text(json.dumps(results, indent=1))
    if args.save_records:  # studies on this machine, finished or not, where a clone finds them
        import optuna

        for s, seed in tasks:
            name = study_name(s, seed)
            if (out / f"{name}.db").exists():
                write_record(record_path(out, name), optuna.load_study(study_name=name,
                                                                       storage=f"sqlite:///{out.resolve()}/{name}.db"))

    seeds = {s: [seed for seed in seed_ids if f"{s}/{seed}" in results] for s in args.samplers}
    curves = {s: [best_so_far([t["R2"] for t in results[f"{s}/{seed}"]]) for seed in seeds[s]]
              for s in args.samplers if seeds[s]}
    counts = sorted({len(v) for v in curves.values()})
    what = (f"{args.problem}: best rate_constants_R2 after n trials, mean ± std over "
            f"{'/'.join(map(str, counts))} sampler seeds, trials at {args.fraction:g} of the problem's length")
    checkpoints = [n for n in CHECKPOINTS if n <= args.trials]
    lines = [what, "", "| sampler | " + " | ".join(f"after {n}" for n in checkpoints) + " | "
             + " | ".join(f"trials to {m}" for m in milestones) + " |", "|---|" + "---|" * (len(checkpoints) + len(milestones))]
    for s, runs in curves.items():
        cells = [f"{np.mean([r[n - 1] for r in runs]):.3f} ± {np.std([r[n - 1] for r in runs]):.3f}" for n in checkpoints]
        for m in milestones:
            cells.append(milestone_cell([trials_to(r, m) for r in runs], args.trials))
        lines.append(f"| {s} | " + " | ".join(cells) + " |")
    if args.full_reruns:
        lines += ["", "Milestones on full-length R² of each study's best-so-far configuration:", "",
                  "| sampler | " + " | ".join(f"trials to {m}" for m in milestones) + " | best at the end, full length |",
                  "|---|" + "---|" * (len(milestones) + 1)]
        for s in curves:
            hits = {m: [] for m in milestones}
            finals = []
            for seed in seeds[s]:
                trials = results[f"{s}/{seed}"]
                best_idx, best, idx = [], float("-inf"), None
                for i, t in enumerate(trials):
                    if t["R2"] is not None and np.isfinite(t["R2"]) and t["R2"] > best:
                        best, idx = t["R2"], i
                    best_idx.append(idx)
                chosen = sorted({i for i in best_idx if i is not None})
                full = dict(zip(chosen, full_length_r2(args.problem, [trials[i]["params"] for i in chosen],
                                                       out / "full_length.json")))
                curve = [full[i] if i is not None else float("-inf") for i in best_idx]
                for m in milestones:
                    hits[m].append(trials_to(curve, m))
                finals.append(curve[-1])
            cells = [milestone_cell(hits[m], args.trials) for m in milestones]
            lines.append(f"| {s} | " + " | ".join(cells) + f" | {np.mean(finals):.3f} ± {np.std(finals):.3f} |")
    if args.paired_with:
        lines += paired_lines(curves, seeds, args.paired_with, checkpoints)
    table = "\n".join(lines)
    print(table)
    (out / "table.md").write_text(table + "\n")
    figure(curves, out / "best_so_far.png", what, PROBLEMS[args.problem].milestones)
    print(f"figure: {out / 'best_so_far.png'}")


if __name__ == "__main__":
    main()
