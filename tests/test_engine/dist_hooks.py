"""Hooks used by tests/test_distributed.py inside msrun workers (loaded through the config's ``custom_imports``)."""
import os

import numpy as np

from effnet_mm.engine.hooks import Hook
from effnet_mm.registry import HOOKS
from effnet_mm.runtime.dist import get_rank


@HOOKS.register_module(force=True)
class DumpRankWeightsHook(Hook):
    """After training, every rank (not only rank 0) writes its model parameters to ``<out_dir>/rank<r>.npz``."""

    def __init__(self, out_dir: str) -> None:
        self.out_dir = out_dir

    def after_run(self, runner) -> None:
        os.makedirs(self.out_dir, exist_ok=True)
        params = {p.name: p.asnumpy() for p in runner.model.get_parameters()}
        np.savez(os.path.join(self.out_dir, f'rank{get_rank()}.npz'), **params)


@HOOKS.register_module(force=True)
class CrashOnRankHook(Hook):
    """Raises on one rank at one training iteration, to check that the launch fails instead of hanging."""

    def __init__(self, rank: int, at_iter: int) -> None:
        self.rank = rank
        self.at_iter = at_iter

    def before_train_iter(self, runner, batch_idx: int) -> None:
        if get_rank() == self.rank and batch_idx + 1 >= self.at_iter:
            raise RuntimeError(f'CrashOnRankHook: rank {self.rank} fails on purpose at iteration {self.at_iter}')
