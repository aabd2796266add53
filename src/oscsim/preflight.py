"""What a command needs from this machine, checked before Hydra starts any job: a data_dir it can write, the
device asked for, memory for the model, and a simulation that stays finite. Each failure is a ConfigError
naming the key (one line); nothing is written before all checks pass."""
from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

from omegaconf import DictConfig, OmegaConf

from .config import max_window, simulation_params
from .params import ConfigError

# Training holds each parameter 4 times (value, gradient, Adam's two moments) and, per step, the activations
# once for backward and once more for their gradients; all float32.
_PARAM_COPIES, _ACTIVATION_COPIES, _BYTES = 4, 2, 4
# Model sizes a user may set too large and their smallest allowed values (config.TRAINING_RULES), in the order
# they are blamed when several are.
SIZE_KEYS = {"hidden_dim_sub": 1, "n_layers_sub": 2, "hidden_dim_node": 1, "n_layers_node": 2, "batch_size": 1,
             "time_step": 1}


def data_root(cfg: DictConfig) -> Path:
    """cfg.data_dir as an absolute path (relative to where the command is run, as the commands read it)."""
    return Path(str(cfg.data_dir)).expanduser().absolute()


def check_data_dir(cfg: DictConfig) -> None:
    """data_dir (or the deepest part of it that exists) must be a directory this process can write in."""
    root = data_root(cfg)
    existing = root
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(f"data_dir={cfg.data_dir}: {existing} is a file, not a directory; "
                          "must be a directory you can write to")
    try:  # a nameless temp file: the only test that also holds for root and read-only mounts
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as e:
        raise ConfigError(f"data_dir={cfg.data_dir}: cannot write in {existing} ({e.strerror or e}); "
                          "must be a directory you can write to") from None


def check_device(cfg: DictConfig) -> None:
    """device=cuda[:N] needs that CUDA device on this machine."""
    import torch

    name = str(cfg.device)
    if not name.startswith("cuda") or not needs_this_machine(cfg):
        return
    if not torch.cuda.is_available():
        raise ConfigError(f"device={name}: CUDA is not available on this machine; must be auto or cpu here")
    n = torch.cuda.device_count()
    index = name.partition(":")[2]
    if index and (not index.isdigit() or int(index) >= n):
        raise ConfigError(f"device={name}: this machine has {n} CUDA device(s); must be auto, cpu or cuda:0..{n - 1}")


def check_memory(cfg: DictConfig) -> None:
    """The model, its optimiser state and one step's activations must fit in the device's free memory,
    estimated on PyTorch's meta device (shapes only, nothing allocated)."""
    if not needs_this_machine(cfg):
        return
    net = _network(cfg)
    sizes = {k: int(cfg[k]) for k in SIZE_KEYS}
    need, n_params = training_bytes(cfg, net, sizes)
    free, where = available_bytes(str(cfg.device))
    if need <= free:
        return
    # blame the size whose smallest allowed value would shrink the need the most; say the largest value that fits
    lowered = {k: training_bytes(cfg, net, {**sizes, k: low})[0] for k, low in SIZE_KEYS.items() if sizes[k] > low}
    key, hint = "batch_size", ""
    if lowered:
        key = min(lowered, key=lambda k: (lowered[k], list(SIZE_KEYS).index(k)))
        if lowered[key] <= free:
            fits = _largest_fitting(lambda v: training_bytes(cfg, net, {**sizes, key: v})[0] <= free,
                                    SIZE_KEYS[key], sizes[key])
            hint = f" (here: {key} <= {fits})"
    raise ConfigError(f"{key}={cfg[key]}: training would need about {human_bytes(need)} ({n_params:.3g} parameters "
                      f"with gradients and Adam state, plus activations) but {where} has {human_bytes(free)} free; "
                      f"must fit in memory{hint}")


def training_bytes(cfg: DictConfig, net: Any, sizes: dict[str, int]) -> tuple[int, int]:
    """(bytes, parameters) one training process needs for the model at ``sizes``."""
    import torch

    from .losses import monotonicity_queries
    from .models import build_model

    model_cfg = OmegaConf.to_container(cfg.model, resolve=True)
    p = simulation_params(cfg)
    with torch.device("meta"):
        model = build_model(net, model_cfg, (p.log_k_min, p.log_k_max),
                            hidden_dim_sub=sizes["hidden_dim_sub"], n_layers_sub=sizes["n_layers_sub"],
                            hidden_dim_node=sizes["hidden_dim_node"], n_layers_node=sizes["n_layers_node"])
    n_params = sum(p.numel() for p in model.parameters())
    activations = 0

    def count(module: Any, inputs: Any, output: Any) -> None:
        nonlocal activations
        activations += output.numel() if isinstance(output, torch.Tensor) else 0

    hooks = [m.register_forward_hook(count) for m in model.modules() if not list(m.children())]
    queries = monotonicity_queries(1.0)[0].to("meta")
    model(torch.zeros(sizes["batch_size"], net.n_metabolites, device="meta"), queries)
    for h in hooks:
        h.remove()
    # a recurrent step or a rollout window keeps every step's activations for the backward pass
    steps = sizes["time_step"] if bool(cfg.recurrent_training) else 1
    window = max_window(cfg)
    if window:
        steps = window * int(cfg.simulation.get("stride", 1)) * int(cfg.simulation.get("substeps", 1))
    data = 2 * (p.n_frames + 1) * net.n_metabolites  # concentrations and dc/dt on the device
    words = _PARAM_COPIES * n_params + _ACTIVATION_COPIES * activations * steps + data
    return _BYTES * words, n_params


def available_bytes(device: str) -> tuple[int, str]:
    """(free bytes, the device's name) where training would run."""
    import torch

    if device.startswith("cuda") or (device == "auto" and torch.cuda.is_available()):
        index = int(device.partition(":")[2] or 0)
        return torch.cuda.mem_get_info(index)[0], f"cuda:{index}"
    try:
        with open("/proc/meminfo") as fh:
            kib = next(int(line.split()[1]) for line in fh if line.startswith("MemAvailable:"))
        return kib * 1024, "this machine"
    except (OSError, StopIteration):
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"), "this machine"


def human_bytes(n: float) -> str:
    units = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB")
    i = min(int(math.log(max(n, 1), 1024)), len(units) - 1)
    return f"{n / 1024 ** i:.3g} {units[i]}"


def _largest_fitting(fits: Callable[[int], bool], low: int, high: int) -> int:
    """The largest v in [low, high) with fits(v), given fits(low) and not fits(high) (need grows with v)."""
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (mid, high) if fits(mid) else (low, mid)
    return low


def check_dataset(cfg: DictConfig) -> None:
    """Simulate the dataset now when it is not cached, so a diverging simulation stops here (nothing written)
    rather than in a traceback from inside a job; a finite one is cached for the command to read."""
    from .dataset import dataset_dir, save, simulate

    p = simulation_params(cfg)
    if p.user_data:
        return  # a user's data set: read and validated by simulation_params
    d = dataset_dir(p, data_root(cfg))
    if (d / "manifest.json").exists():
        return  # cached (the command verifies its checksums when it loads it)
    try:
        ds = simulate(p)
    except ValueError as e:
        raise ConfigError(f"simulation.delta_t={cfg.simulation.delta_t}: {e}") from None
    # every file is written atomically and the manifest last, so a concurrent writer of the same dataset is harmless
    save(ds, d)


def _network(cfg: DictConfig) -> Any:
    from .dataset import build

    p = simulation_params(cfg)
    if p.user_data:  # a user's data set: its own network
        from .datafile import user_data

        return user_data(cfg.simulation)[1].network
    return build(p)


def needs_this_machine(cfg: DictConfig) -> bool:
    """False when Hydra's launcher runs the jobs elsewhere (SLURM): their device and memory are not ours."""
    target = str(OmegaConf.select(cfg, "hydra.launcher._target_", default="") or "")
    return "submitit" not in target and "Slurm" not in target
