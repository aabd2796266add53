"""Hyper-parameter sweep: the PUCT tree (``tree``, ``scores``), the UCB sampler (``ucb_sampler`` with its
``moves``, ``move_stats`` and ``planner``), the study runner and the experiment log. Kept import-light on
purpose: importing this package must not pull in torch."""
