"""How a batch's cost grows with the number of models it trains (batched trials), on one device.

For each batch size M: M seeds of the default model (`--model faithful`: the lab's) on rank_50 trained as one
vectorised model (`--compile`: compiled) for
`--iterations` iterations; prints the training loop's iterations per second (scoring and files excluded),
what that is in model-iterations per second, and the wall time of the whole call. `--check N` first trains
seeds 1..N alone and as one batch on the same device and prints how far each metric moves (the CPU's answer,
tested in tests/test_batched.py, is within 1e-4). Run by hand (`make bench-scaling`), on a GPU as

    python scripts/bench_scaling.py --device cuda --sizes 1,16,64,256,512 --check 3 --out $OUT/scaling.json
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from bench import augmentation_for  # scripts/ is on the path when this file runs
from oscsim.config import CONF_DIR

COMPARED = ("rate_constants_R2", "rate_constants_R2_identifiable", "test_R2", "final_loss")


def configs(seeds: list[int], iterations: int, device: str, threads: int, compile_: bool = False,
            model: str = "default") -> list:
    from hydra import compose, initialize_config_dir

    aug = augmentation_for(iterations)
    base = [f"device={device}", f"threads={threads}", "progress=false", "plots=false", "tensorboard=false",
            f"compile={str(compile_).lower()}", f"data_augmentation_loop={aug:.6f}", f"eval_every={iterations}",
            "rollout_frames=100", *(["model=faithful", "loss=default"] if model == "faithful" else [])]
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        return [compose("config", overrides=[*base, f"seed={s}"]) for s in seeds]


def train(cfgs: list) -> tuple[list[dict], float]:
    from oscsim.train import train_many

    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        metrics = train_many(cfgs, [Path(d) / str(i) for i in range(len(cfgs))])
        return metrics, time.perf_counter() - t0


def profile(cfgs: list, device: str) -> None:
    """torch.profiler over one short batched training (its scoring included): where the host and device time go."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device == "cuda" else [])
    with torch_profile(activities=activities) as prof:
        train(cfgs)
    for key in (["self_cuda_time_total"] if device == "cuda" else []) + ["self_cpu_time_total"]:
        print(f"{len(cfgs)} models, 60 iterations, sorted by {key}:")
        print(prof.key_averages().table(sort_by=key, row_limit=15, max_name_column_width=40))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="auto", help="auto | cpu | cuda")
    ap.add_argument("--sizes", default="1,2,4,8", help="batch sizes (models trained as one)")
    ap.add_argument("--iterations", type=int, default=400)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--compile", action="store_true", help="compile each batch's objective (compile=true; the loop's "
                    "it/s leaves the compile out)")
    ap.add_argument("--model", choices=("default", "faithful"), default="default",
                    help="faithful: the lab's model and regularisers (Batch 1's settings)")
    ap.add_argument("--check", type=int, default=0, help="compare N seeds alone and batched first (0: skip)")
    ap.add_argument("--profile", type=int, default=0, help="profile a batch of N models for 60 iterations and print "
                    "the operators that take the most device and host time (0: skip)")
    ap.add_argument("--out", default=None, help="also write the figures to this JSON file")
    args = ap.parse_args()
    device = args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    name = torch.cuda.get_device_name() if device == "cuda" else f"cpu, {args.threads} thread(s)"
    report: dict = {"device": name, "model": args.model, "compile": args.compile, "iterations": args.iterations, "sizes": [], "check": None}
    print(f"device: {name}; {args.model} model, rank_50, {args.iterations} iterations a model, "
          f"compile={str(args.compile).lower()}")
    if args.check:
        seeds = list(range(1, args.check + 1))
        alone = [train(configs([s], args.iterations, device, args.threads))[0][0] for s in seeds]
        batched, _ = train(configs(seeds, args.iterations, device, args.threads))
        # relative where a metric is large (final_loss sums the loss over every iteration)
        diffs = {k: max(abs(a[k] - b[k]) / max(1.0, abs(a[k])) for a, b in zip(alone, batched)) for k in COMPARED}
        report["check"] = diffs
        print("alone vs batched, largest difference over seeds (relative above 1): "
              + ", ".join(f"{k} {v:.2e}" for k, v in diffs.items()))
    if args.profile:
        profile(configs(list(range(1, args.profile + 1)), 60, device, args.threads), device)
    for m in (int(s) for s in args.sizes.split(",") if s):
        metrics, wall = train(configs(list(range(1, m + 1)), args.iterations, device, args.threads, args.compile,
                                      args.model))
        ips = metrics[0]["iterations_per_second"]
        row = {"models": m, "iterations_per_second": ips, "model_iterations_per_second": m * ips, "wall_s": wall}
        if device == "cuda":
            row["peak_memory_GiB"] = torch.cuda.max_memory_allocated() / 2**30
            torch.cuda.reset_peak_memory_stats()
        report["sizes"].append(row)
        print(f"{m:4d} models: {ips:8.1f} it/s, {m * ips:9.0f} model-it/s, whole call {wall:6.1f} s"
              + (f", peak {row['peak_memory_GiB']:.2f} GiB" if "peak_memory_GiB" in row else ""), flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
