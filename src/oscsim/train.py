"""`python -m oscsim.train [overrides]`: train one configuration on the cached dataset and score it.

Read top to bottom: settings, data, model, optimiser, the loop, the scores, the files. The same loop trains
several configurations at once as one vectorised model (`train_many`, `batched=true`): every per-model value
then has a leading model axis, and one configuration is the plain case. The returned dict of
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
from .config import EXTRA_CONFIG_KEYS, LAB_CONFIG_KEYS, check_batchable, check_training_data, max_window, validate
from .evaluate import evaluate, rate_constant_scores, rollouts
from .host import keep_freed_memory
from .metrics import trial_status
from .models import build_model
from .models.stacked import Stacked, group_lrs
from .objective import COEFFICIENTS, PER_MODEL_SETTINGS, Objective, active_terms
from .observation import (Observation, auto_settings, derivative_error_weights, error_weights, noise_estimate, smooth,
                          window_starts)
from .optim import CompiledAdamStep, FusedAdam, StackedAdam
from .params import ConfigError
from .sign_flips import flip_signs, round_coefficients

log = logging.getLogger(__name__)

Report = Callable[[int, float], bool]


# Frames are drawn for this many iterations at a time: a generator's draws come out the same whether drawn one
# iteration or many at a time, and a batch of hundreds of models then pays its per-model host calls once per chunk.
DRAW_CHUNK = 256
_VECTORISED_ROLLOUTS_ON = ("cuda",)  # devices where a batch's test rollouts run as one vectorised rollout


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


# compile=auto compiles once a run trains this many model-iterations (iterations x models in the batch): the
# compile costs about the same whatever the batch's size, so a batch pays for it sooner. On one CPU thread, with an
# empty cache, it paid from ~14,000-20,000 iterations for one model fitting dc/dt, ~6,300-7,200 for two and ~3,300
# for five; rolling windows (10-20 model steps an iteration, one graph of ~45-65 s), from ~3,100-4,000 for one model
# and ~1,900 for five (README, Benchmarks).
AUTO_COMPILE_MODEL_ITERATIONS = {"derivative": 20000, "window": 10000}
# Rolling windows and recurrent steps compile as one graph with every model step unrolled: measured up to 20 steps
MAX_UNROLLED_STEPS = 40


def auto_compiles(n_iterations: int, n_models: int, device_type: str, mode: str = "derivative") -> bool:
    """What `compile=auto` decides for a run of `mode`: "window" for observed windows rolled as one graph, anything
    else counts as fitting dc/dt. A compiled batch and a window roll compiled as one graph have been checked on
    CPUs only: on a GPU auto leaves a batch vmapped (compile=true compiles it) and counts a window run as one
    fitting dc/dt."""
    if n_models > 1 and device_type != "cpu":
        return False
    threshold = AUTO_COMPILE_MODEL_ITERATIONS["window" if mode == "window" and device_type == "cpu" else "derivative"]
    return n_iterations * n_models >= threshold


def iterations_per_epoch(n_frames: int, data_augmentation_loop: float, batch_size: int) -> int:
    """The lab's formula: int(n_frames * data_augmentation_loop // batch_size * 0.2)."""
    return int(n_frames * data_augmentation_loop // batch_size * 0.2)


def train(cfg: DictConfig, out_dir: Path, report: Report | None = None) -> dict:
    """Train one configuration in out_dir; returns its metrics."""
    return train_many([cfg], [out_dir], [report])[0]


def train_many(cfgs: list[DictConfig], out_dirs: list[Path], reports: list[Report | None] | None = None) -> list[dict]:
    """Train configurations that differ only in per-model scalars (BATCHABLE_KEYS: learning rates,
    coefficients, seed) together, as one vectorised model; each gets the metrics, files and reports a
    separate run gives it. One configuration trains as a plain model (and may be compiled)."""
    from .simulate import dataset_for

    cfg, n_models = cfgs[0], len(cfgs)
    reports = list(reports or [None] * n_models)
    for c in cfgs:
        validate(c)
        check_training_data(c)
    check_batchable(cfgs)
    if cfg.get("export_sbml") and cfg.model.get("kind") != "michaelis_menten":
        raise ConfigError(f"export_sbml={cfg.export_sbml}: only a model with a closed-form rate law "
                          "(model=michaelis_menten) can be written as SBML; MLP_sub has none")
    for d in out_dirs:
        d.mkdir(parents=True, exist_ok=True)
    # ---- settings -------------------------------------------------------------------------------------
    torch.set_num_threads(int(cfg.threads))
    keep_freed_memory()  # each step's buffers reuse the last step's memory instead of fresh pages
    device = pick_device(str(cfg.device))
    frames_rngs = [torch.Generator().manual_seed(int(c.seed) + 1) for c in cfgs]  # frame sampling, per model
    recurrent = bool(cfg.recurrent_training) and int(cfg.time_step) > 1
    time_step = int(cfg.time_step) if recurrent else 1

    # ---- data -----------------------------------------------------------------------------------------
    ds = dataset_for(cfg)
    p = ds.params
    n_iter = iterations_per_epoch(p.n_frames, float(cfg.data_augmentation_loop), int(cfg.batch_size))
    n_total = n_iter * int(cfg.n_epochs)
    lbfgs = cfg.get("optimizer", "adam") == "lbfgs"
    if lbfgs:  # full batch: each iteration one L-BFGS step (a line search of up to 20 evaluations on every frame)
        if n_models > 1 or recurrent or max_window(cfg):
            raise ConfigError("optimizer=lbfgs: one model fitting exact dc/dt only (batched=false, window=0, "
                              "recurrent_training=false)")
        n_total = int(cfg.lbfgs_steps)
    error_scale = str(cfg.error_scale)
    if error_scale == "relative_k" and (recurrent or max_window(cfg)):  # k's path exists for exact dc/dt only
        log.info("error_scale=relative_k weighs exact dc/dt only: windows and recurrent steps take errors as "
                 "measured (absolute; error_scale=relative weighs them)")
        error_scale = "absolute"
    window, smoothing = cfg.get("window") or 0, cfg.get("start_smoothing") or 0
    objective_data: dict = {}
    if window:  # observed data: only the observed series (noisy, strided) is read from here on
        obs = ds.observation
        if "auto" in (window, smoothing):  # from the noise the series shows, never from the simulation's settings
            sigma = noise_estimate(obs.c)
            auto_window, auto_smoothing = auto_settings(sigma, int(cfg.simulation.get("stride", 1)))
            window = auto_window if window == "auto" else window
            smoothing = auto_smoothing if smoothing == "auto" else smoothing
            log.info("noise estimate %.4f: window=%d start_smoothing=%d", sigma, window, smoothing)
        window, smoothing = int(window), int(smoothing)
        obs_c = torch.as_tensor(obs.c, device=device)
        starts_c = torch.as_tensor(smooth(obs.c, smoothing), device=device)
        heldout_window = int(cfg.heldout_window)
        train_starts, held_starts = window_starts(len(obs.c), window, float(cfg.heldout_fraction), heldout_window)
        if len(train_starts) == 0:
            raise ConfigError(f"window={window}: longer than the observed series allows ({len(obs.c)} observations)")
        train_starts_t = torch.as_tensor(train_starts, device=device)
        match = int(cfg.match_every)  # the observations of a window the loss matches: match, 2 match, ...
        if match > window:
            raise ConfigError(f"match_every={match}: must be <= window ({window})")
        offsets = torch.arange(match, window + 1, match, device=device)
        steps_ahead = torch.arange(1, window + 1, device=device)  # the window's observations (the loss picks offsets)
        xnorm = 1.5 * float(np.std(obs.c))
        objective_data = dict(mode="window", window=window, substeps=obs.substeps, dt=obs.dt, interval=obs.interval * match,
                              offsets=offsets, err_scale=torch.as_tensor(error_weights(obs.c, error_scale),
                                                                         dtype=obs_c.dtype, device=device))
        n_draw = len(train_starts)
    else:
        conc = torch.as_tensor(ds.concentrations, device=device)
        dcdt = torch.as_tensor(ds.dcdt, device=device) if not recurrent else None
        n_draw = p.n_frames - 4 - time_step  # frames drawn from [0, n_draw), as the lab draws them
        xnorm = 1.5 * float(np.std(ds.concentrations))
        objective_data = dict(mode="recurrent" if recurrent else "derivative", delta_t=p.delta_t, time_step=time_step)
        if error_scale != "absolute":  # each metabolite's dc/dt error in units of its dc/dt's spread
            rates = np.diff(ds.concentrations, axis=0) / p.delta_t if recurrent else ds.dcdt
            key = "err_scale" if error_scale == "relative" else "k_err_scale"
            objective_data[key] = torch.as_tensor(derivative_error_weights(rates), dtype=conc.dtype, device=device)

    boundary = np.flatnonzero(ds.network.boundary_mask) if ds.params.drive else np.array([], dtype=np.int64)
    forced = torch.as_tensor(boundary, device=device) if window and len(boundary) else None  # driven species
    # ---- models and optimiser -------------------------------------------------------------------------
    model_cfg = OmegaConf.to_container(cfg.model, resolve=True)
    models = []
    for c in cfgs:
        torch.manual_seed(int(c.seed))  # model initialisation
        models.append(build_model(ds.network, model_cfg, (p.log_k_min, p.log_k_max), hidden_dim_sub=int(cfg.hidden_dim_sub),
                                  n_layers_sub=int(cfg.n_layers_sub), hidden_dim_node=int(cfg.hidden_dim_node),
                                  n_layers_node=int(cfg.n_layers_node)).to(device))
    if "k_err_scale" in objective_data and not hasattr(models[0], "through_k"):
        raise ConfigError(f"error_scale=relative_k: model {cfg.model.get('name', '')} holds no mass-action rates; "
                          "use relative")
    settings = [{k: float(c.get(k) or 0.0) for k in PER_MODEL_SETTINGS} for c in cfgs]
    learned_S = getattr(models[0], "learned_S", False)  # model.stoichiometry=learned: S's coefficients are parameters
    terms_on = active_terms(settings, learned_S, has_sub=models[0].sub is not None)
    queries, _ = L.monotonicity_queries(xnorm)
    use_queries = "MLP_sub_diff" in terms_on or "MLP_sub_norm" in terms_on
    groups = [m.param_groups(c.lr_k, c.lr_node, c.lr_sub, c.get("lr_embedding"), c.get("lr_S")) for m, c in zip(models, cfgs)]
    # torch.compile fuses the small MLPs' kernels but costs ~15-65 s up front: worth it only for long trials
    # (`compile: auto`). Fitting dc/dt, and on a CPU rolling windows or recurrent steps of up to MAX_UNROLLED_STEPS
    # model steps, the whole objective (model, roll, loss, regularisers; a batch's vmapped one) is one compiled
    # graph; otherwise (longer rolls, or rolls on a GPU) one model's step alone is, and a batch of them runs uncompiled.
    mode = objective_data["mode"]
    steps = window * objective_data["substeps"] if mode == "window" else objective_data.get("time_step", 1)
    whole = mode == "derivative" or (device.type == "cpu" and steps <= MAX_UNROLLED_STEPS)
    compiled = cfg.compile is True or (cfg.compile == "auto" and auto_compiles(
        n_total, n_models, device.type, mode if whole else "derivative"))  # a roll's step alone gains little
    if n_models > 1 and not whole:
        if cfg.compile is True:
            log.info("compile=true: a batch of models rolling more than %d steps (or on a GPU) runs vmapped, not "
                     "compiled", MAX_UNROLLED_STEPS)
        compiled = False
    objectives = [Objective(m, terms=terms_on, queries=queries.to(device) if use_queries else None,
                            log_k_range=(p.log_k_min, p.log_k_max), n_reactions=ds.network.n_reactions,
                            step=torch.compile(m) if compiled and not whole else None, forced=forced, **objective_data)
                  for m in models]
    cosine = cfg.get("lr_schedule", "constant") == "cosine"
    # Compiled, fitting dc/dt: the whole step (objective, gradient, Adam) is one graph (optim.StackedAdam.compile_step), unless
    # sign flips or rounding edit torch's optimiser state. Checked on CPUs only: on a GPU the objective alone is.
    fused = (compiled and whole and not lbfgs and device.type == "cpu"
             and not cfg.get("S_flip_every") and not cfg.get("S_round_at"))
    if lbfgs:  # one step size for all (the line search sets it); the learning rates are Adam's
        optimizer = torch.optim.LBFGS([q for g in groups[0] for q in g["params"]], lr=1.0, max_iter=20,
                                      history_size=50, line_search_fn="strong_wolfe")
        scheduler = None
    elif n_models == 1 and not fused:
        optimizer = FusedAdam(groups[0]) if device.type in ("cpu", "cuda") else torch.optim.Adam(groups[0])
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, n_total)) if cosine else None

    def with_total(terms: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        return terms, sum(v.sum() for v in terms.values())

    if n_models == 1:
        step_settings = settings[0]

        def one_model(c: torch.Tensor, target: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
            return with_total({k: v[None] for k, v in objectives[0](c[0], target[0], step_settings).items()})

        # compiled, the settings are constants of the graph (read from here, not passed in: no tensors made per step)
        loss_terms = torch.compile(one_model) if compiled and whole and not fused else one_model
        if fused:
            optimizer, scheduler = CompiledAdamStep(one_model, groups[0]), None
    else:
        stacked, scheduler = Stacked(objectives), None
        lrs = [group_lrs(o, gs, list(stacked.params)) for o, gs in zip(objectives, groups)]
        optimizer = StackedAdam(stacked.params, {n: torch.tensor([lr[n] for lr in lrs]) for n in stacked.params})
        step_settings = {k: torch.tensor([s[k] for s in settings], dtype=torch.float32, device=device) for k in PER_MODEL_SETTINGS}

        def all_models(c: torch.Tensor, target: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
            return with_total(stacked(c, target, step_settings))

        loss_terms = torch.compile(all_models) if compiled and not fused else all_models
        if fused:
            optimizer.compile_step(all_models)

    writers = []
    if cfg.tensorboard:
        from torch.utils.tensorboard import SummaryWriter

        writers = [SummaryWriter(log_dir=str(d / "tensorboard")) for d in out_dirs]

    # ---- the loop -------------------------------------------------------------------------------------
    log_every = max(1, min(500, n_total // 200))
    names = ("prediction", "MLP_sub_diff", "MLP_node_L1", "MLP_sub_norm", "k_floor", "k_range", "k_prior", "S_L1",
             "S_integer", "mass_conservation")
    histories: list[dict[str, list[float]]] = [{"iteration": [], **{k: [] for k in names}, "rate_constants_R2": []}
                                               for _ in cfgs]
    total_pred = torch.zeros(n_models, device=device)  # summed on device: no sync per iteration
    running = torch.ones(n_models, device=device)  # 0 once a model has stopped (pruned or failed)
    status, errors = ["running"] * n_models, [None] * n_models
    stopped_at: list[int | None] = [None] * n_models  # iterations done by a model that stopped early
    t0 = time.perf_counter()
    bar = tqdm(range(n_total), disable=not cfg.progress, desc="train" if n_models == 1 else f"train x{n_models}",
               mininterval=1.0)
    for m in models:
        m.train()
    WARMUP = 20  # first iterations (and torch.compile's tracing) are left out of iterations_per_second
    t_warm = t0
    ramp = float(cfg.get("S_exponent_ramp") or 0.0) * n_total  # learned S: iterations until exponent = |s|
    flip_every = int(cfg.get("S_flip_every") or 0)  # learned S: sign-flip moves judged on every training frame
    if flip_every and not (learned_S and n_models == 1 and objective_data["mode"] == "derivative" and not lbfgs):
        raise ConfigError(f"S_flip_every={flip_every}: needs model.stoichiometry=learned fitting exact dc/dt, one "
                          "model at a time (window=0, recurrent_training=false, batched=false, optimizer=adam)")
    round_at = round(float(cfg.get("S_round_at") or 0.0) * n_total)  # learned S: iteration to hold integers from
    if round_at and not (learned_S and n_models == 1 and models[0].sto_param == "coefficient"):
        raise ConfigError(f"S_round_at={cfg.S_round_at}: needs model.stoichiometry=learned with "
                          "model.sto_param=coefficient, one model at a time (batched=false)")

    def member(m: int) -> torch.nn.Module:
        """Model m with its current parameters (a batch's are written back from the stacked ones)."""
        if n_models > 1:
            stacked.write_back(m)
        return models[m]

    def stop(m: int, it: int, why: str, error: str | None = None) -> None:
        status[m], errors[m], stopped_at[m] = why, error, it + 1
        running[m] = 0.0
        if n_models > 1:
            optimizer.scale[m] = 0.0  # its parameters stay where they stopped
        if error:
            log.warning("%s", error if n_models == 1 else f"model {m} (seed {cfgs[m].seed}): {error}")

    for it in bar:
        if it == WARMUP:
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            t_warm = time.perf_counter()
        if learned_S and ramp > 0:
            for m in models:
                m.exponent_mix.fill_(min(1.0, (it + 1) / ramp))
        if lbfgs:  # every frame
            draws = torch.arange(n_draw, device=device)[None]
        else:
            if it % DRAW_CHUNK == 0:  # the next DRAW_CHUNK iterations' frames of every model, one host call each
                chunk = torch.stack([torch.randint(0, n_draw, (DRAW_CHUNK, int(cfg.batch_size)), generator=g)
                                     for g in frames_rngs]).to(device)
            draws = chunk[:, it % DRAW_CHUNK]
        if window:  # (M, B) window starts; targets (M, window, B, n): the window's observations
            t = train_starts_t[draws]
            c, target = starts_c[t], obs_c[t[:, None] + steps_ahead[None, :, None]]
        else:
            c, target = conc[draws], conc[draws + time_step] if recurrent else dcdt[draws]

        def closure() -> torch.Tensor:
            nonlocal terms
            terms, loss = loss_terms(c, target)
            optimizer.zero_grad()
            loss.backward()
            return loss

        terms: dict[str, torch.Tensor] = {}
        if fused:  # objective, gradient and Adam's update in one compiled call
            terms, loss = optimizer(c, target)
        else:
            loss = optimizer.step(closure) if lbfgs else closure()
            if not lbfgs:
                optimizer.step()
        if scheduler is not None:
            scheduler.step()
        elif (n_models > 1 or fused) and cosine:  # CosineAnnealingLR's closed form, per model; 0 stays 0 for stopped ones
            optimizer.scale = running * 0.5 * (1 + math.cos(math.pi * (it + 1) / max(1, n_total)))
        total_pred += terms["prediction"].detach() * running
        if flip_every and (it + 1) % flip_every == 0:
            flipped, reset = flip_signs(models[0], optimizer, conc[:n_draw], dcdt[:n_draw], objective_data.get("err_scale"),
                                        {name: settings[0][COEFFICIENTS[name]] for name in L.S_PENALTIES},
                                        n_draw / int(cfg.batch_size))
            histories[0].setdefault("sign_flips", []).append([it + 1, len(flipped), len(reset)])
        if round_at and it + 1 == round_at:
            rounded = round_coefficients(models[0], optimizer)
            histories[0]["S_rounded"] = [it + 1, len(rounded)]
            log.info("iteration %d: %d reactions' coefficients held at their integers", it + 1, len(rounded))

        if it % log_every == 0 or it == n_total - 1:
            values = {name: v.detach().cpu().tolist() for name, v in terms.items()}
            for m in range(n_models):
                if status[m] != "running":
                    continue
                mine = {name: v[m] for name, v in values.items()}
                if not math.isfinite(sum(mine.values())):
                    stop(m, it, "failed", f"non-finite loss at iteration {it}")
                    continue
                histories[m]["iteration"].append(it)
                for name in names:
                    histories[m][name].append(mine.get(name, 0.0))
                if learned_S:
                    histories[m].setdefault("exponent_mix", []).append(float(models[m].exponent_mix))
                if writers:
                    for name, v in mine.items():
                        writers[m].add_scalar(f"loss/{name}", v, it)
        if (it + 1) % int(cfg.eval_every) == 0 or it == n_total - 1:
            for m in range(n_models):
                if status[m] != "running":
                    continue
                r2_now = rate_constant_scores(member(m), ds)[0]["rate_constants_R2"]
                histories[m]["rate_constants_R2"].append(r2_now)
                if n_models == 1:
                    bar.set_postfix(loss=f"{float(loss.detach()):.3g}", R2=f"{r2_now:.3f}")
                if writers:
                    writers[m].add_scalar("metrics/rate_constants_R2", r2_now, it)
                if reports[m] is not None and reports[m](it + 1, r2_now):
                    stop(m, it, "pruned")
        if not any(s == "running" for s in status):
            break
    if device.type == "cuda":  # the loop only queues kernels: its time is the device's once they have run
        torch.cuda.synchronize(device)
    train_seconds = time.perf_counter() - t0
    ips = ((it + 1 - WARMUP) / max(t0 + train_seconds - t_warm, 1e-9) if it + 1 > 2 * WARMUP
           else (it + 1) / max(train_seconds, 1e-9))

    # On a GPU the test rollouts of a batch run as one vectorised rollout (a step for hundreds of models costs about
    # one model's kernel launches). On a CPU one model at a time: each run's numbers stay bit for bit a separate
    # run's, and the vectorised one only pays from ~5 models there (rank_50, 500 frames: 2.9 vs 3.4 s for 5, 7.2 vs
    # 13.6 s for 20).
    preds = [None] * n_models
    if n_models > 1 and device.type in _VECTORISED_ROLLOUTS_ON:
        preds = rollouts([member(m) for m in range(n_models)], ds, int(cfg.rollout_frames), bool(cfg.rollout_clamp),
                         getattr(torch, str(cfg.rollout_dtype)))
    results = []
    for m in range(n_models):
        model = member(m)
        iterations_done = stopped_at[m] or it + 1
        final_loss = float(total_pred[m]) / p.n_metabolites  # the lab's meaning: summed over iterations / n_met
        results.append(_finish(cfgs[m], out_dirs[m], model, ds, histories[m], status[m], errors[m], final_loss,
                               iterations_done, train_seconds, ips, writers[m] if writers else None,
                               (obs, held_starts, heldout_window, 256, forced) if window else None, learned_S, n_models,
                               preds[m]))
    return results


def _finish(cfg: DictConfig, out_dir: Path, model: torch.nn.Module, ds, history: dict, status: str, error: str | None,
            final_loss: float, iterations_done: int, train_seconds: float, ips: float, writer, heldout, learned_S: bool,
            n_models: int, preds: dict | None = None) -> dict:
    """One model's scores and files."""
    p = ds.params
    # ---- scores ---------------------------------------------------------------------------------------
    if status == "failed" or not all(torch.isfinite(q).all() for q in model.parameters()):
        status = "failed"
        error = error or "non-finite parameters"
        metrics = {"rate_constants_R2": float("nan"), "test_R2": float("nan")}
        ev = None
    else:
        ev = evaluate(model, ds, int(cfg.rollout_frames), bool(cfg.rollout_clamp),
                      getattr(torch, str(cfg.rollout_dtype)), preds)
        metrics = ev.metrics
        if heldout is not None:
            metrics["heldout_loss"] = heldout_loss(model, *heldout)
        if status != "pruned":
            status = trial_status(metrics["rate_constants_R2"]) if ds.has_truth else "completed"
    metrics.update({
        "final_loss": final_loss,
        "final_loss_per_sample": final_loss * p.n_metabolites / max(1, iterations_done * int(cfg.batch_size)),
        "status": status,
        "training_time_min": train_seconds / 60,
        "iterations": iterations_done,
        "iterations_per_second": ips,
    })
    if n_models > 1:
        metrics["models_in_batch"] = n_models  # training time and speed are the batch's
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
    if cfg.get("export_sbml") and ev is not None:  # what the model holds, as a kinetic model any SBML tool opens
        from .sbml import export_network

        f = Path(str(cfg.export_sbml))
        export_network(f if f.is_absolute() else out_dir / f, ds.network, ds.concentrations, p.delta_t,
                       p.drive, log_k=model.log_k.detach().cpu().double().numpy(),
                       log_km=model.log_km.detach().cpu().double().numpy(), name=f"{p.name}_learned")
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
def heldout_loss(model: torch.nn.Module, obs: Observation, starts: np.ndarray, window: int, chunk: int = 256,
                 forced: torch.Tensor | None = None) -> float:
    """The window loss per window (no regulariser), averaged over the held-out windows of the observed series,
    in float64: a score that needs no true k (a sweep objective on a user's data; lower is better). `forced`:
    driven boundary species, which follow the observations."""
    if len(starts) == 0:
        return float("nan")
    p = next(model.parameters())
    model = model.eval().to(torch.float64)
    c = torch.as_tensor(obs.c, dtype=torch.float64, device=p.device)
    offsets = torch.arange(1, window + 1, device=p.device)
    total = 0.0
    for i in range(0, len(starts), chunk):
        t = torch.as_tensor(starts[i : i + chunk], device=p.device)
        target = c[t[None] + offsets[:, None]]
        states, _ = L.roll_windows(model, c[t], window, obs.substeps, obs.dt, None, forced,
                                   None if forced is None else target[..., forced])
        total += float(L.window_loss(states, target, obs.interval))
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
    for c, d in _seed_runs(cfg, out_dir, seeds):
        runs.append(train(c, d))
        ended = _seeds_done(runs, report)
        if ended:
            break
    return _seeds_metrics(seeds, runs, out_dir, ended)


def _seed_runs(cfg: DictConfig, out_dir: Path, seeds: list[int]) -> list[tuple[DictConfig, Path]]:
    """The configuration once per seed, each in out_dir/seed_<s>."""
    return [(OmegaConf.merge(cfg, {"seed": int(s)}), out_dir / f"seed_{s}") for s in seeds]


def _seeds_done(runs: list[dict], report: Report | None) -> str | None:
    """After the latest seed: "failed" (it crashed or went non-finite), "pruned" (the pruner said so) or None."""
    if "error" in runs[-1]:
        return "failed"
    if report is not None and report(len(runs) - 1, runs[-1]["rate_constants_R2"]):
        return "pruned"
    return None


def _seeds_metrics(seeds: list[int], runs: list[dict], out_dir: Path, ended: str | None) -> dict:
    """The configuration's metrics: means over the seeds run (and each seed's R^2), in out_dir; `ended` says
    why the seeds stopped early ("failed", "pruned"), if they did."""
    numeric = [k for k, v in runs[0].items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
    metrics: dict = {k: float(np.mean([r[k] for r in runs])) for k in numeric}
    metrics["rate_constants_R2_std"] = float(np.std([r["rate_constants_R2"] for r in runs]))
    metrics["rate_constants_R2_per_seed"] = [r["rate_constants_R2"] for r in runs]
    metrics["seeds"] = [int(s) for s in seeds[: len(runs)]]
    metrics["status"] = ended or trial_status(metrics["rate_constants_R2"])
    if ended == "failed":
        metrics["error"] = f"seed {metrics['seeds'][-1]}: {runs[-1]['error']}"
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
    (out_dir / "analysis.log").write_text("".join(f"{k}: {v}\n" for k, v in metrics.items()))
    return metrics


def train_batch(members: list[tuple[DictConfig, Path, Report | None]]) -> list[dict]:
    """Configurations (a sweep batch; each once, or once per seed of its `seeds`) trained together as one
    vectorised model; each gets the metrics, files and reports its own run gives it. Seeds report to their
    trial after the batch, in order, as a sequential run would have (a pruned one keeps the seeds before)."""
    invalid: dict[int, dict] = {}
    for i, (c, _, _) in enumerate(members):  # a bad member fails alone, as its own job would
        try:
            validate(c)
        except ConfigError as e:
            invalid[i] = {"status": "failed", "error": f"ConfigError: {e}"}
    runs = [(i, run_cfg, run_dir) for i, (cfg, out_dir, _) in enumerate(members) if i not in invalid
            for run_cfg, run_dir in (_seed_runs(cfg, out_dir, list(cfg.seeds)) if cfg.get("seeds") else [(cfg, out_dir)])]
    reports = [None if members[i][0].get("seeds") else members[i][2] for i, _, _ in runs]
    results = train_many([c for _, c, _ in runs], [d for _, _, d in runs], reports) if runs else []
    out = []
    for i, (cfg, out_dir, report) in enumerate(members):
        if i in invalid:
            out.append(invalid[i])
            continue
        mine = [r for (j, _, _), r in zip(runs, results) if j == i]
        if not cfg.get("seeds"):
            out.append(mine[0])
            continue
        done: list[dict] = []
        for r in mine:
            done.append(r)
            ended = _seeds_done(done, report)
            if ended:
                break
        out.append(_seeds_metrics(list(cfg.seeds), done, out_dir, ended))
    return out


def run(cfg: DictConfig) -> dict:
    """Hydra task: train in Hydra's run directory and return the metrics (for sweepers). A sweep job may
    report intermediate values to its trial (for pruning); the training loop only sees a callback. A batched
    sweep job (`batch_file`) trains its members together and returns {"batch": [their metrics]}."""
    from hydra.core.hydra_config import HydraConfig

    from .batch import member_configs

    out_dir = Path(HydraConfig.get().runtime.output_dir)
    members = member_configs(cfg) if cfg.get("batch_file") else [(cfg, out_dir)]
    with_reports = []
    for c, d in members:
        report = None
        if c.get("sweep_trial") and c.sweep_trial.get("number") is not None:
            from .sweep.reporting import trial_reporter

            report = trial_reporter(OmegaConf.to_container(c.sweep_trial, resolve=True))
        with_reports.append((c, d, report))
    if cfg.get("batched"):
        results = train_batch(with_reports)
    else:
        results = [train_seeds(c, d, list(c.seeds), r) if c.get("seeds") else train(c, d, r) for c, d, r in with_reports]
    return {"batch": results} if cfg.get("batch_file") else results[0]


main = hydra_entry(run)

if __name__ == "__main__":
    main()
