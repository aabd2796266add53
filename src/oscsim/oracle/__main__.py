"""`python -m oscsim.oracle simulation=<regime>`: the identifiability ceiling of a dataset.

Prints the lab's metrics for the least-squares estimate and writes oracle.json beside the dataset."""
from __future__ import annotations

import json

from omegaconf import DictConfig

from ..cli import hydra_entry
from ..simulate import dataset_for
from .estimate import exact_rollout_scores, oracle

KEYS = ("rate_constants_R2", "trimmed_R2", "n_outliers", "slope", "rate_constants_R2_identifiable",
        "n_outliers_identifiable", "max_abs_error_identifiable", "n_identifiable", "n_unidentifiable",
        "exact_test_R2_float32", "exact_rollout_horizon_float32", "exact_test_R2_float64", "exact_rollout_horizon_float64",
        "s_sign_ceiling", "s_sign_ceiling_identifiable")


def run(cfg: DictConfig) -> dict:
    ds = dataset_for(cfg)
    p = ds.params
    m = oracle(ds.network, ds.concentrations, ds.dcdt, (p.log_k_min, p.log_k_max))
    m.update(exact_rollout_scores(ds.network, ds.concentrations, min(int(cfg.rollout_frames), p.n_frames - 2), p.delta_t))
    (ds.path / "oracle.json").write_text(json.dumps(m, indent=2))
    print(f"identifiability ceiling of {p.name} ({ds.path}):")
    for k in KEYS:
        v = m[k]
        print(f"  {k}: {v:.6g}" if isinstance(v, float) else f"  {k}: {v}")
    print(f"  unidentifiable: {m['unidentifiable']}")
    return m


main = hydra_entry(run)

if __name__ == "__main__":
    main()
