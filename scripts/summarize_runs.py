"""Print a table of the metrics of every run under a Hydra multirun directory (one row per run)."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import yaml

COLUMNS = ("rate_constants_R2", "trimmed_R2", "n_outliers", "slope", "alpha", "test_R2", "rate_constants_R2_identifiable",
           "rollout_horizon", "MLP_node_slope_0", "training_time_min", "iterations_per_second")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("root", type=Path)
    ap.add_argument("--keys", nargs="*", default=["model.node_init", "seed"], help="config keys shown per row")
    args = ap.parse_args()
    rows = []
    for mfile in sorted(args.root.rglob("metrics.json")):
        m = json.loads(mfile.read_text())
        cfg = yaml.safe_load((mfile.parent / "config.yaml").read_text())
        keys = []
        for k in args.keys:
            v = cfg
            for part in k.split("."):
                v = v.get(part) if isinstance(v, dict) else None
            keys.append(str(v))
        rows.append(keys + [m.get(c) for c in COLUMNS])
    header = list(args.keys) + list(COLUMNS)
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for r in sorted(rows, key=lambda r: [str(x) for x in r[: len(args.keys)]]):
        print("| " + " | ".join(f"{x:.4g}" if isinstance(x, float) else str(x) for x in r) + " |")


if __name__ == "__main__":
    main()
