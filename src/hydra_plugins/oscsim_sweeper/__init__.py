"""oscsim's Hydra sweeper: Optuna samplers (UCB tree, TPE, random, grid) on current Optuna."""
