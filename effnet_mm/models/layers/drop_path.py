from __future__ import annotations

from mindspore import nn, ops

from effnet_mm.registry import MODELS


@MODELS.register_module()
class DropPath(nn.Cell):
    """Drop-connect (stochastic depth) of a residual branch, per sample, as in the TF reference.

    In training, each sample's branch is zeroed with probability ``drop_prob`` and survivors are scaled by
    ``1 / (1 - drop_prob)``; in eval it is the identity.  The runner passes the per-sample factors as ``keep``
    (drawn on the host from ``(seed, epoch, sample_idx)``, see :mod:`effnet_mm.engine.randomness`), so the masks are
    data of the compiled step, not state of a random kernel; without ``keep`` the layer draws them with
    ``ops.rand``.

    Example config::

        drop = dict(type='DropPath', drop_prob=0.1)

    Args:
        drop_prob: probability of dropping the branch of a sample.
    """

    def __init__(self, drop_prob: float = 0.0) -> None:
        super().__init__()
        if not 0.0 <= drop_prob < 1.0:
            raise ValueError(f'DropPath: drop_prob must be in [0, 1), got {drop_prob}')
        self.drop_prob = float(drop_prob)
        self.keep_prob = 1.0 - self.drop_prob

    def construct(self, x, keep=None):
        """``keep``: optional ``(N,)`` factors, 0 (dropped) or ``1 / (1 - drop_prob)`` (kept), per sample."""
        if not self.training or self.drop_prob == 0.0:
            return x
        if keep is None:
            mask = ops.rand((x.shape[0], 1, 1, 1), dtype=x.dtype) < self.keep_prob
            return x / self.keep_prob * mask.astype(x.dtype)
        return x * keep.reshape((-1, 1, 1, 1)).astype(x.dtype)

    def extend_repr(self) -> str:
        return f'drop_prob={self.drop_prob}'
