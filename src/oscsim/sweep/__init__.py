"""Hyper-parameter sweep: a PUCT tree over trials (``tree``) and an Optuna sampler built on it
(``ucb_sampler``). Kept import-light on purpose: importing this package must not pull in torch."""
