"""Does a reduced-length trial rank configurations the way a full-length trial does? On the lab's search
(faithful model, loss=default, oscillatory_rank_50, the lab's knobs of SPEC §10), each of N configurations
(0: the lab's baseline, 1: baseline + coeff_k_floor=1.0, the rest drawn with numpy default_rng(0)) is trained
at data_augmentation_loop x f for each reduced factor f and at full length (f=1); the script reports each
factor's Spearman rank correlation of rate_constants_R2 with the full-length R2.

Run: `python scripts/bench_fidelity.py [--configs 12] [--factors 0.1 0.2] [--out multirun/bench_fidelity]`.
One training process, one torch thread. Resumable: every finished (config, factor) trial is appended to
<out>/results.jsonl and skipped on rerun; the table is (re)written to <out>/table.md at the end."""
from __future__ import annotations

import argparse
import json
import math
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import spearmanr
from tqdm import tqdm

LOG_UNIFORM = ("lr_k", "lr_node", "lr_sub")  # in [1e-4, 1e-2]
CHOICES: dict[str, tuple[float, ...]] = {
    "coeff_k_floor": (0.0, 0.1, 1.0, 10.0),
    "k_floor_threshold": (-3.0, -2.5, -2.0),
    "coeff_MLP_sub_norm": (0.0, 0.1, 1.0, 10.0),
    "coeff_MLP_sub_diff": (0, 1, 5, 10, 50),
    "coeff_MLP_node_L1": (0.0, 0.1, 1.0, 10.0),
    "data_augmentation_loop": (250, 500, 1000),
    "seed": (42, 1, 2, 3),
}
BASELINE: dict[str, float] = {"lr_k": 0.005, "lr_node": 0.001, "lr_sub": 0.0005, "coeff_k_floor": 0.0,
                              "k_floor_threshold": -3.0, "coeff_MLP_sub_norm": 0.0, "coeff_MLP_sub_diff": 5,
                              "coeff_MLP_node_L1": 1.0, "data_augmentation_loop": 1000, "seed": 42}
BASE_OVERRIDES = ["model=faithful", "loss=default", "threads=1", "progress=false", "plots=false",
                  "tensorboard=false", "compile=false", "rollout_frames=200"]
FULL = 1.0  # the factor of a full-length trial


def draw_configs(n: int) -> list[dict[str, float]]:
    """n configurations from default_rng(0); 0 and 1 are then replaced by the lab's baseline and breakthrough
    (drawing all n first keeps configurations 2.. the same whatever 0 and 1 are)."""
    rng = np.random.default_rng(0)
    configs: list[dict[str, float]] = []
    for _ in range(n):
        c: dict[str, float] = {k: float(10 ** rng.uniform(-4, -2)) for k in LOG_UNIFORM}
        c.update({k: v[int(rng.integers(len(v)))] for k, v in CHOICES.items()})
        configs.append(c)
    if n > 0:
        configs[0] = dict(BASELINE)
    if n > 1:
        configs[1] = {**BASELINE, "coeff_k_floor": 1.0}
    return configs


def run_trial(config: dict[str, float], factor: float) -> dict[str, Any]:
    """Train one configuration at data_augmentation_loop x factor; a crash is recorded, not raised."""
    from hydra import compose, initialize_config_dir

    from oscsim.config import CONF_DIR
    from oscsim.train import train

    params = {**config, "data_augmentation_loop": round(config["data_augmentation_loop"] * factor, 6)}
    overrides = BASE_OVERRIDES + [f"{k}={v!r}" for k, v in params.items()]
    try:
        with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
            cfg = compose("config", overrides=overrides)
        with tempfile.TemporaryDirectory() as d:
            m = train(cfg, Path(d))
        out = {k: m.get(k) for k in ("rate_constants_R2", "test_R2", "iterations", "training_time_min", "status")}
        if m.get("error"):
            out["error"] = str(m["error"])
        return out
    except Exception as e:  # noqa: BLE001 -- a crashed configuration is a result, not the end of the benchmark
        return {"rate_constants_R2": float("nan"), "test_R2": float("nan"), "iterations": None,
                "training_time_min": None, "status": "crashed", "error": f"{type(e).__name__}: {e}"}


def load(path: Path) -> dict[tuple[int, float], dict[str, Any]]:
    done: dict[tuple[int, float], dict[str, Any]] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            if line.strip():
                r = json.loads(line)
                done[(int(r["config"]), float(r["factor"]))] = r
    return done


def r2(done: dict[tuple[int, float], dict[str, Any]], i: int, f: float) -> float:
    v = done.get((i, f), {}).get("rate_constants_R2")
    return float(v) if v is not None else float("nan")


def table(configs: list[dict[str, float]], factors: list[float], done: dict[tuple[int, float], dict[str, Any]]) -> str:
    keys = list(BASELINE)
    cols = [*factors, FULL]
    fmt = lambda x: "—" if math.isnan(x) else f"{x:.3f}"  # noqa: E731
    lines = ["rate_constants_R2 per configuration (faithful, loss=default, oscillatory_rank_50; f: factor on "
             "data_augmentation_loop)", "",
             "| # | " + " | ".join(keys) + " | " + " | ".join(f"f={f:g}" for f in factors) + " | full |",
             "|---" * (1 + len(keys) + len(cols)) + "|"]
    for i, c in enumerate(configs):
        vals = [f"{c[k]:.2e}" if k in LOG_UNIFORM else f"{c[k]:g}" for k in keys]
        lines.append(f"| {i} | " + " | ".join(vals) + " | " + " | ".join(fmt(r2(done, i, f)) for f in cols) + " |")
    lines += ["", "Spearman rank correlation with full-length rate_constants_R2 (configurations with both finite):", "",
              "| factor | rho | p | n |", "|---|---|---|---|"]
    for f in factors:
        pairs = [(r2(done, i, f), r2(done, i, FULL)) for i in range(len(configs))]
        pairs = [p for p in pairs if not (math.isnan(p[0]) or math.isnan(p[1]))]
        if len(pairs) >= 3:
            rho, p = spearmanr([a for a, _ in pairs], [b for _, b in pairs])
            lines.append(f"| {f:g} | {rho:.3f} | {p:.3g} | {len(pairs)} |")
        else:
            lines.append(f"| {f:g} | — | — | {len(pairs)} |")
    odd = [f"config {k[0]} f={k[1]:g}: {r['status']}" + (f" ({r['error']})" if r.get("error") else "")
           for k, r in sorted(done.items()) if r.get("status") == "crashed" or r.get("error")]
    if odd:
        lines += ["", "Crashed / errored trials:", *[f"- {o}" for o in odd]]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--configs", type=int, default=12)
    ap.add_argument("--factors", type=float, nargs="+", default=[0.1, 0.2])
    ap.add_argument("--out", type=Path, default=Path("multirun/bench_fidelity"))
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    results = args.out / "results.jsonl"
    configs = draw_configs(args.configs)
    done = load(results)
    # reduced trials first (smallest factor first), full-length last: partial results are already useful
    todo = [(i, f) for f in [*sorted(args.factors), FULL] for i in range(len(configs)) if (i, f) not in done]
    for i, f in tqdm(todo, desc="trials", unit="trial"):
        r = {"config": i, "factor": f, "params": configs[i], **run_trial(configs[i], f)}
        with results.open("a") as fh:  # one line per trial, flushed at once: a kill loses at most the running one
            fh.write(json.dumps(r) + "\n")
        done[(i, f)] = r
        tqdm.write(f"config {i} f={f:g}: R2={r['rate_constants_R2']} status={r['status']}")
    text = table(configs, sorted(args.factors), done)
    print(text)
    (args.out / "table.md").write_text(text + "\n")


if __name__ == "__main__":
    main()
