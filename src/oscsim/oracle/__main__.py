"""`python -m oscsim.oracle simulation=<regime>`: the identifiability ceiling of a dataset.

Prints the lab's metrics for the least-squares estimate and writes oracle.json beside the dataset. When only
concentrations are observed (`simulation.noise`, `simulation.stride`, a user's data set with its true log_k)
it prints the observed-data ceiling instead: the best of derivative and window-integral matching (SPEC §9)."""
from __future__ import annotations

import json

from omegaconf import DictConfig

from ..cli import hydra_entry
from ..simulate import dataset_for
from ..params import ConfigError
from .estimate import exact_rollout_scores, observed_oracle, oracle

KEYS = ("rate_constants_R2", "trimmed_R2", "n_outliers", "slope", "rate_constants_R2_identifiable",
        "n_outliers_identifiable", "max_abs_error_identifiable", "n_identifiable", "n_unidentifiable",
        "exact_test_R2_float32", "exact_rollout_horizon_float32", "exact_test_R2_float64", "exact_rollout_horizon_float64",
        "s_sign_ceiling", "s_sign_ceiling_identifiable", "n_sign_free_edges", "stoichiometry_R2_ceiling",
        "stoichiometry_R2_sign_free_at_0", "n_Vmax_identifiable_with_Km", "n_Km_identifiable",
        "Vmax_R2_identifiable_with_Km")


OBSERVED_KEYS = ("observed_R2_identifiable", "best", "derivative_R2_identifiable", "derivative_setting",
                 "window_R2_identifiable", "window_setting", "window_spline_R2_identifiable", "window_spline_setting")


def run(cfg: DictConfig) -> dict:
    ds = dataset_for(cfg)
    p = ds.params
    if not ds.derivatives_observed:
        if not ds.has_truth or (p.user_data and not p.homeostasis_lambda):
            raise ConfigError(f"simulation.path={cfg.simulation.path}: the oracle scores against the truth; the data "
                              "set needs log_k, metabolite_type, homeostasis_lambda and homeostasis_baseline")
        o = ds.observation
        m = observed_oracle(ds.network, o.c, o.interval, (p.log_k_min, p.log_k_max), o.substeps)
        print(f"observed-data ceiling of {p.name} (noise {o.noise:g}, stride {o.stride}; identifiable reactions; "
              "settings: Savitzky-Golay width / window length in observations, in steps for window_spline):")
        for k in OBSERVED_KEYS:
            if k in m:
                print(f"  {k}: {m[k]:.6g}" if isinstance(m[k], float) else f"  {k}: {m[k]}")
        return m
    m = oracle(ds.network, ds.concentrations, ds.dcdt, (p.log_k_min, p.log_k_max))
    m.update(exact_rollout_scores(ds.network, ds.concentrations, min(int(cfg.rollout_frames), p.n_frames - 2), p.delta_t))
    (ds.path / "oracle.json").write_text(json.dumps(m, indent=2))
    print(f"identifiability ceiling of {p.name} ({ds.path}):")
    if ds.network.log_km is not None:
        print("  (Michaelis-Menten: Vmax by least squares with Km known)")
    for k in KEYS:
        if k not in m:
            continue
        v = m[k]
        print(f"  {k}: {v:.6g}" if isinstance(v, float) else f"  {k}: {v}")
    print(f"  unidentifiable: {m['unidentifiable']}")
    return m


main = hydra_entry(run)

if __name__ == "__main__":
    main()
