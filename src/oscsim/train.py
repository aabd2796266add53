"""`python -m oscsim.train [overrides]`: train one configuration on the cached dataset and score it.

Read top to bottom: settings, data, model, optimiser, the loop, the scores, the files. The returned dict of
metrics is what a sweeper reads; this file knows nothing of sweeps (a sweep may pass `report`, a callback
that receives (iteration, rate_constants_R2) and answers True to stop the trial).
"""
from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from . import losses as L
from .cli import hydra_entry
from .config import EXTRA_CONFIG_KEYS, LAB_CONFIG_KEYS, check_training_data, validate
from .evaluate import evaluate, rate_constant_scores
from .metrics import trial_status
from .models import build_model
from .observation import Observation, error_weights, smooth, window_starts
from .params import ConfigError

log = logging.getLogger(__name__)

Report = Callable[[int, float], bool]


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def iterations_per_epoch(n_frames: int, data_augmentation_loop: float, batch_size: int) -> int:
    """The lab's formula: int(n_frames * data_augmentation_loop // batch_size * 0.2)."""
    return int(n_frames * data_augmentation_loop // batch_size * 0.2)


def train(cfg: DictConfig, out_dir: Path, report: Report | None = None) -> dict:
    from .simulate import dataset_for

    validate(cfg)
    check_training_data(cfg)
    out_dir.mkdir(parents=True, exist_ok=True)
    # ---- settings -------------------------------------------------------------------------------------
    torch.set_num_threads(int(cfg.threads))
    device = pick_device(str(cfg.device))
    torch.manual_seed(int(cfg.seed))  # model initialisation
    frames_rng = torch.Generator().manual_seed(int(cfg.seed) + 1)  # frame sampling
    recurrent = bool(cfg.recurrent_training) and int(cfg.time_step) > 1
    time_step = int(cfg.time_step) if recurrent else 1

    # ---- data -----------------------------------------------------------------------------------------
    ds = dataset_for(cfg)
    p = ds.params
    n_iter = iterations_per_epoch(p.n_frames, float(cfg.data_augmentation_loop), int(cfg.batch_size))
    n_total = n_iter * int(cfg.n_epochs)
    window = int(cfg.get("window") or 0)
    if window:  # observed data: only the observed series (noisy, strided) is read from here on
        obs = ds.observation
        obs_c = torch.as_tensor(obs.c, device=device)
        starts_c = torch.as_tensor(smooth(obs.c, int(cfg.start_smoothing)), device=device)
        heldout_window = int(cfg.heldout_window)
        train_starts, held_starts = window_starts(len(obs.c), window, float(cfg.heldout_fraction), heldout_window)
        if len(train_starts) == 0:
            raise ConfigError(f"window={window}: longer than the observed series allows ({len(obs.c)} observations)")
        train_starts_t = torch.as_tensor(train_starts, device=device)
        match = int(cfg.match_every)  # the observations of a window the loss matches: match, 2 match, ...
        if match > window:
            raise ConfigError(f"match_every={match}: must be <= window ({window})")
        offsets = torch.arange(match, window + 1, match, device=device)
        xnorm = 1.5 * float(np.std(obs.c))
        err_scale = torch.as_tensor(error_weights(obs.c, str(cfg.error_scale)), dtype=obs_c.dtype, device=device)
    else:
        conc = torch.as_tensor(ds.concentrations, device=device)
        dcdt = torch.as_tensor(ds.dcdt, device=device)
        high = p.n_frames - 4 - time_step  # frames drawn from [0, high), as the lab draws them
        xnorm = 1.5 * float(np.std(ds.concentrations))

    # ---- model and optimiser --------------------------------------------------------------------------
    model_cfg = OmegaConf.to_container(cfg.model, resolve=True)
    model = build_model(ds.network, model_cfg, (p.log_k_min, p.log_k_max), hidden_dim_sub=int(cfg.hidden_dim_sub), n_layers_sub=int(cfg.n_layers_sub),
                        hidden_dim_node=int(cfg.hidden_dim_node), n_layers_node=int(cfg.n_layers_node)).to(device)
    groups = model.param_groups(cfg.lr_k, cfg.lr_node, cfg.lr_sub, cfg.get("lr_embedding"), cfg.get("lr_S"))
    optimizer = torch.optim.Adam(groups, fused=True) if device.type in ("cpu", "cuda") else torch.optim.Adam(groups)
    # torch.compile fuses the small MLPs' kernels (~1.3-2x here) but costs ~15-25 s up front: worth it
    # only for long trials (`compile: auto`).
    compiled = cfg.compile is True or (cfg.compile == "auto" and n_total >= 20000)
    forward = torch.compile(model) if compiled else model
    queries, _ = L.monotonicity_queries(xnorm)
    queries = queries.to(device)
    coeff = {k: float(cfg.get(k, 0.0)) for k in ("coeff_MLP_sub_diff", "coeff_MLP_node_L1", "coeff_MLP_sub_norm",
                                                 "coeff_k_floor", "coeff_k_range", "coeff_S_L1", "coeff_S_integer",
                                                 "coeff_mass_conservation")}
    learned_S = getattr(model, "learned_S", False)  # model.stoichiometry=learned: S's coefficients are parameters
    scheduler = (torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, n_total))
                 if cfg.get("lr_schedule", "constant") == "cosine" else None)
    use_queries = coeff["coeff_MLP_sub_diff"] > 0 or coeff["coeff_MLP_sub_norm"] > 0

    writer = None
    if cfg.tensorboard:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(log_dir=str(out_dir / "tensorboard"))

    # ---- the loop -------------------------------------------------------------------------------------
    log_every = max(1, min(500, n_total // 200))
    history: dict[str, list[float]] = {"iteration": [], "prediction": [], "MLP_sub_diff": [], "MLP_node_L1": [],
                                       "MLP_sub_norm": [], "k_floor": [], "k_range": [], "k_prior": [], "S_L1": [],
                                       "S_integer": [], "mass_conservation": [],
                                       "rate_constants_R2": []}
    sums = {k: 0.0 for k in history if k not in ("iteration", "rate_constants_R2")}
    total_pred = torch.zeros((), device=device)  # summed on device: no sync per iteration
    status, r2_now, error, it = "running", float("nan"), None, -1
    t0 = time.perf_counter()
    bar = tqdm(range(n_total), disable=not cfg.progress, desc="train", mininterval=1.0)
    model.train()
    WARMUP = 20  # first iterations (and torch.compile's tracing) are left out of iterations_per_second
    t_warm = t0
    ramp = float(cfg.get("S_exponent_ramp") or 0.0) * n_total  # learned S: iterations until exponent = |s|
    for it in bar:
        if it == WARMUP:
            t_warm = time.perf_counter()
        if learned_S and ramp > 0:
            model.exponent_mix.fill_(min(1.0, (it + 1) / ramp))
        if window:  # rollouts from observed states, matched at each observation of the window
            t = train_starts_t[torch.randint(0, len(train_starts), (int(cfg.batch_size),), generator=frames_rng).to(device)]
            states, out = L.roll_windows(forward, starts_c[t], window, obs.substeps, obs.dt, queries if use_queries else None)
            loss_pred = L.window_loss(states[offsets - 1] * err_scale, obs_c[t[None] + offsets[:, None]] * err_scale,
                                      obs.interval * match)
        elif recurrent:
            k = torch.randint(0, high, (int(cfg.batch_size),), generator=frames_rng).to(device)
            c = conc[k]
            for _ in range(time_step):  # roll forward; the regularisers see the last step's outputs
                out = forward(c, queries if use_queries else None)
                c = c + p.delta_t * out.dcdt
            loss_pred = L.prediction_loss(c / (p.delta_t * time_step), conc[k + time_step] / (p.delta_t * time_step))
        else:
            k = torch.randint(0, high, (int(cfg.batch_size),), generator=frames_rng).to(device)
            out = forward(conc[k], queries if use_queries else None)
            loss_pred = L.prediction_loss(out.dcdt, dcdt[k])
        terms = {"prediction": loss_pred}
        if coeff["coeff_MLP_sub_diff"] > 0:
            terms["MLP_sub_diff"] = coeff["coeff_MLP_sub_diff"] * L.sub_diff_penalty(out.sub_queries)
        if coeff["coeff_MLP_sub_norm"] > 0:
            terms["MLP_sub_norm"] = coeff["coeff_MLP_sub_norm"] * L.sub_norm_penalty(out.sub_queries)
        if coeff["coeff_MLP_node_L1"] > 0:
            terms["MLP_node_L1"] = coeff["coeff_MLP_node_L1"] * L.node_l1_penalty(out.node)
        if coeff["coeff_k_floor"] > 0:
            terms["k_floor"] = coeff["coeff_k_floor"] * L.k_floor_penalty(model.log_k, float(cfg.k_floor_threshold))
        if coeff["coeff_k_range"] > 0:
            terms["k_range"] = coeff["coeff_k_range"] * L.k_range_penalty(model.log_k, p.log_k_min, p.log_k_max)
        sto = model.coefficients() if learned_S else None  # the coefficients the model uses
        if sto is not None and coeff["coeff_S_L1"] > 0:
            terms["S_L1"] = coeff["coeff_S_L1"] * L.s_l1_penalty(sto)
        if sto is not None and coeff["coeff_S_integer"] > 0:
            terms["S_integer"] = coeff["coeff_S_integer"] * L.s_integer_penalty(sto)
        if sto is not None and coeff["coeff_mass_conservation"] > 0:
            terms["mass_conservation"] = coeff["coeff_mass_conservation"] * L.mass_conservation_penalty(
                sto, model.sto_rxn, ds.network.n_reactions)
        prior = model.prior_penalty()  # the model's own prior on the k the data leave free
        if prior is not None:
            terms["k_prior"] = prior
        loss = sum(terms.values())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        total_pred += loss_pred.detach()

        if it % log_every == 0 or it == n_total - 1:
            values = {name: float(v.detach()) for name, v in terms.items()}
            if not math.isfinite(sum(values.values())):
                status, error = "failed", f"non-finite loss at iteration {it}"
                log.warning(error)
                break
            history["iteration"].append(it)
            for name in sums:
                history[name].append(values.get(name, 0.0))
            if learned_S:
                history.setdefault("exponent_mix", []).append(float(model.exponent_mix))
            if writer:
                for name, v in values.items():
                    writer.add_scalar(f"loss/{name}", v, it)
        if (it + 1) % int(cfg.eval_every) == 0 or it == n_total - 1:
            r2_now = rate_constant_scores(model, ds)[0]["rate_constants_R2"]
            history["rate_constants_R2"].append(r2_now)
            bar.set_postfix(loss=f"{float(loss.detach()):.3g}", R2=f"{r2_now:.3f}")
            if writer:
                writer.add_scalar("metrics/rate_constants_R2", r2_now, it)
            if report is not None and report(it + 1, r2_now):
                status = "pruned"
                break
    train_seconds = time.perf_counter() - t0
    iterations_done = it + 1

    # ---- scores ---------------------------------------------------------------------------------------
    final_loss = float(total_pred) / p.n_metabolites  # the lab's meaning: summed over iterations / n_met
    if status == "failed" or not all(torch.isfinite(q).all() for q in model.parameters()):
        status = "failed"
        error = error or "non-finite parameters"
        metrics = {"rate_constants_R2": float("nan"), "test_R2": float("nan")}
        ev = None
    else:
        ev = evaluate(model, ds, int(cfg.rollout_frames), bool(cfg.rollout_clamp),
                      getattr(torch, str(cfg.rollout_dtype)))
        metrics = ev.metrics
        if window:
            metrics["heldout_loss"] = heldout_loss(model, obs, held_starts, heldout_window)
        if status != "pruned":
            status = trial_status(metrics["rate_constants_R2"]) if ds.has_truth else "completed"
    metrics.update({
        "final_loss": final_loss,
        "final_loss_per_sample": final_loss * p.n_metabolites / max(1, iterations_done * int(cfg.batch_size)),
        "status": status,
        "training_time_min": train_seconds / 60,
        "iterations": iterations_done,
        "iterations_per_second": (iterations_done - WARMUP) / max(t0 + train_seconds - t_warm, 1e-9)
        if iterations_done > 2 * WARMUP else iterations_done / max(train_seconds, 1e-9),
    })
    if error:
        metrics["error"] = error

    # ---- files ----------------------------------------------------------------------------------------
    metrics = {k: _plain(v) for k, v in metrics.items()}
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
    (out_dir / "analysis.log").write_text("".join(f"{k}: {v}\n" for k, v in metrics.items()))
    (out_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg))
    np.save(out_dir / "log_k.npy", model.log_k.detach().cpu().numpy())
    if learned_S:
        np.save(out_dir / "S_learned.npy", model.stoichiometry().detach().cpu().numpy())
    torch.save({"model": model.state_dict(), "config": OmegaConf.to_container(cfg, resolve=True)}, out_dir / "checkpoint.pt")
    (out_dir / "history.json").write_text(json.dumps(history))
    if cfg.plots and ev is not None:
        from .figures_trial import trial_figures

        trial_figures(ev, ds, history, out_dir / "figures")
    if writer:
        hparams = {k: (v if isinstance(v, (int, float, str, bool)) else str(v)) for k, v in
                   ((k, cfg[k]) for k in LAB_CONFIG_KEYS + EXTRA_CONFIG_KEYS if cfg.get(k) is not None)}
        hparams["model"] = str(cfg.model.name)
        finals = {f"final/{k}": v for k, v in metrics.items() if isinstance(v, (int, float)) and math.isfinite(v)}
        writer.add_hparams(hparams, finals, run_name=".")
        writer.close()
    log.info("%s", "  ".join(f"{k}={metrics[k]:.4g}" for k in ("rate_constants_R2", "trimmed_R2", "test_R2", "alpha")
                              if isinstance(metrics.get(k), float)))
    return metrics


@torch.no_grad()
def heldout_loss(model: torch.nn.Module, obs: Observation, starts: np.ndarray, window: int, chunk: int = 256) -> float:
    """The window loss per window (no regulariser), averaged over the held-out windows of the observed series,
    in float64: a score that needs no true k (a sweep objective on a user's data; lower is better)."""
    if len(starts) == 0:
        return float("nan")
    p = next(model.parameters())
    model = model.eval().to(torch.float64)
    c = torch.as_tensor(obs.c, dtype=torch.float64, device=p.device)
    offsets = torch.arange(1, window + 1, device=p.device)
    total = 0.0
    for i in range(0, len(starts), chunk):
        t = torch.as_tensor(starts[i : i + chunk], device=p.device)
        states, _ = L.roll_windows(model, c[t], window, obs.substeps, obs.dt)
        total += float(L.window_loss(states, c[t[None] + offsets[:, None]], obs.interval))
    model.to(torch.float32)
    return total / len(starts)


def _plain(v):
    """JSON-safe scalars: numpy to Python; inf/nan stay floats (json writes them as Infinity/NaN)."""
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    return v


def train_seeds(cfg: DictConfig, out_dir: Path, seeds: list[int], report: Report | None = None) -> dict:
    """Train the configuration once per seed (in out_dir/seed_<s>); the metrics are the means over seeds,
    with each seed's rate_constants_R2 reported as an intermediate value (step = seed index), so a pruner
    comparing configurations seed by seed (Wilcoxon) can stop a clearly worse one early."""
    runs: list[dict] = []
    pruned = False
    for i, s in enumerate(seeds):
        c = cfg.copy()
        c.seed = int(s)
        m = train(c, out_dir / f"seed_{s}")
        runs.append(m)
        if "error" in m:  # crashed or non-finite: the configuration failed
            break
        if report is not None and report(i, m["rate_constants_R2"]):
            pruned = True
            break
    numeric = [k for k, v in runs[0].items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
    metrics: dict = {k: float(np.mean([r[k] for r in runs])) for k in numeric}
    metrics["rate_constants_R2_std"] = float(np.std([r["rate_constants_R2"] for r in runs]))
    metrics["rate_constants_R2_per_seed"] = [r["rate_constants_R2"] for r in runs]
    metrics["seeds"] = [int(s) for s in seeds[: len(runs)]]
    crashed = [r for r in runs if "error" in r]
    metrics["status"] = "failed" if crashed else "pruned" if pruned else trial_status(metrics["rate_constants_R2"])
    if crashed:
        metrics["error"] = f"seed {metrics['seeds'][-1]}: {crashed[0]['error']}"
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
    (out_dir / "analysis.log").write_text("".join(f"{k}: {v}\n" for k, v in metrics.items()))
    return metrics


def run(cfg: DictConfig) -> dict:
    """Hydra task: train in Hydra's run directory and return the metrics (for sweepers). A sweep job may
    report intermediate values to its trial (for pruning); the training loop only sees a callback."""
    from hydra.core.hydra_config import HydraConfig

    out_dir = Path(HydraConfig.get().runtime.output_dir)
    report = None
    if cfg.get("sweep_trial") and cfg.sweep_trial.get("number") is not None:
        from .sweep.reporting import trial_reporter

        report = trial_reporter(OmegaConf.to_container(cfg.sweep_trial, resolve=True))
    if cfg.get("seeds"):
        return train_seeds(cfg, out_dir, list(cfg.seeds), report)
    return train(cfg, out_dir, report)


main = hydra_entry(run)

if __name__ == "__main__":
    main()
