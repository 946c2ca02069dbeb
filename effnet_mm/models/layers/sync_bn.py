"""Synchronised BatchNorm: training-mode moments of the global batch of a group of data-parallel ranks.

On Ascend, :func:`build_sync_batch_norm` returns MindSpore's ``nn.SyncBatchNorm`` (its fused kernel; MindSpore
documents it for Ascend only).  On CPU MindSpore 2.10 has no usable layer: ``nn.SyncBatchNorm`` leaves its group
unset ("The parameter 'group' must be isinstance of <class 'str'>, but got None") and ``mint.nn.SyncBatchNorm`` has
no CPU ``BatchNormStats`` kernel.  There (and on GPU) :class:`SyncBatchNorm2d` all-reduces the moments itself,
which works with any collective backend; the all-reduces are part
of the differentiated graph (``AllReduce``'s gradient is the all-reduce of the incoming gradients), so the backward
pass is the exact gradient of a BatchNorm over the global batch.
"""
from __future__ import annotations

from typing import Dict, Optional, Tuple

import mindspore as ms
from mindspore import Parameter, Tensor, nn, ops
from mindspore.common.initializer import initializer

from effnet_mm.runtime import dist

# One communication group per (group size, group index), shared by all layers of the process.
_GROUPS: Dict[Tuple[int, int], str] = {}


def sync_group_ranks(group_size: Optional[int]) -> Tuple[int, ...]:
    """Ranks whose batches this process's SyncBN layers normalise together (``(rank, )``: no synchronisation).

    ``group_size`` None means every rank of the process group; otherwise it must divide the world size, and ranks
    ``[k * group_size, (k + 1) * group_size)`` form group ``k`` (TF's ``num_shards_per_group``).  Outside a process
    group (one process) there is nothing to synchronise and ``group_size`` is not checked.
    """
    if group_size is not None and (isinstance(group_size, bool) or not isinstance(group_size, int)
                                   or group_size < 1):
        raise ValueError(f'norm_cfg.group_size must be a positive int or None, got {group_size!r}')
    rank, world = dist.get_rank(), dist.get_world_size()
    size = world if group_size is None else group_size
    if world == 1:
        return (rank, )
    if world % size:
        raise ValueError(f'norm_cfg.group_size={group_size} does not divide the number of processes ({world})')
    first = rank // size * size
    return tuple(range(first, first + size))


def _group_name(ranks: Tuple[int, ...]) -> str:
    from mindspore.communication import GlobalComm, create_group

    if len(ranks) == dist.get_world_size():
        return GlobalComm.WORLD_COMM_GROUP
    key = (len(ranks), ranks[0] // len(ranks))
    if key not in _GROUPS:
        name = f'effnet_sync_bn_{key[0]}_{key[1]}'
        create_group(name, list(ranks))
        _GROUPS[key] = name
    return _GROUPS[key]


class SyncBatchNorm2d(nn.Cell):
    """BatchNorm over NCHW inputs whose training-mode mean and variance are those of the group's global batch.

    A drop-in for ``nn.BatchNorm2d``: the same parameters (``gamma``, ``beta``, ``moving_mean``,
    ``moving_variance``), attributes (``eps``, ``momentum`` = weight of the new batch statistic,
    ``use_batch_statistics``) and moving-average update (with the unbiased variance of the global batch).  Evaluation
    (and ``use_batch_statistics=False``) normalises with the moving statistics and communicates nothing.  When the
    group is this process alone (no process group, or ``group_size=1``) every mode runs ``nn.BatchNorm2d``'s own
    kernels, so the results are identical to BN.

    In a group, per channel: one all-reduce of ``[sum(x), count]`` gives the global mean, a second one of
    ``sum((x - mean)^2)`` the global (biased) variance used for normalising; both are differentiated through.
    Counts are all-reduced too, so ranks may hold batches of different sizes.

    Built by ``norm_cfg=dict(type='SyncBN')``, see :func:`~effnet_mm.models.layers.build_norm_layer`.

    Args:
        num_features: channels ``C``.
        eps: added to the variance.
        momentum: weight of the new batch statistic in the moving averages (PyTorch/mmpretrain convention).
        group_size: number of consecutive ranks that share moments (None: all ranks), see :func:`sync_group_ranks`.
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1,
                 group_size: Optional[int] = None) -> None:
        super().__init__()
        if not isinstance(num_features, int) or num_features < 1:
            raise ValueError(f'SyncBatchNorm2d: num_features must be a positive int, got {num_features!r}')
        if not 0.0 < momentum < 1.0:
            raise ValueError(f'SyncBatchNorm2d: momentum (weight of the new batch statistic) must be in (0, 1), '
                             f'got {momentum}')
        self.num_features = num_features
        self.eps = float(eps)
        self.momentum = float(momentum)
        self.use_batch_statistics: Optional[bool] = None
        # nn.BatchNorm2d's parameter order.
        self.moving_mean = Parameter(initializer('zeros', num_features, ms.float32), name='moving_mean',
                                     requires_grad=False)
        self.moving_variance = Parameter(initializer('ones', num_features, ms.float32), name='moving_variance',
                                         requires_grad=False)
        self.gamma = Parameter(initializer('ones', num_features, ms.float32), name='gamma')
        self.beta = Parameter(initializer('zeros', num_features, ms.float32), name='beta')
        self.group_ranks = sync_group_ranks(group_size)
        self.synchronised = len(self.group_ranks) > 1
        # nn.BatchNorm2d's primitives: the local and the evaluation forms are bit-identical to BN.
        self.bn_train = ops.BatchNorm(is_training=True, epsilon=self.eps, momentum=self.momentum)
        self.bn_infer = ops.BatchNorm(is_training=False, epsilon=self.eps)
        self.all_reduce = ops.AllReduce(group=_group_name(self.group_ranks)) if self.synchronised else None

    def extend_repr(self) -> str:
        return (f'num_features={self.num_features}, eps={self.eps}, momentum={self.momentum}, '
                f'group_ranks={self.group_ranks}')

    def construct(self, x):
        dtype = x.dtype
        # Statistics in float32 also when AMP O2 casts this cell's input to float16 (it only spares nn.BatchNorm*).
        x = ops.cast(x, ms.float32)
        if self.use_batch_statistics is False or (self.use_batch_statistics is None and not self.training):
            y = self.bn_infer(x, self.gamma, self.beta, self.moving_mean, self.moving_variance)[0]
        elif not self.synchronised:
            y = self.bn_train(x, self.gamma, self.beta, self.moving_mean, self.moving_variance)[0]
        else:
            y = self._global_batch_norm(x)
        return ops.cast(y, dtype)

    def _global_batch_norm(self, x):
        local_count = x.shape[0] * x.shape[2] * x.shape[3]
        sums = self.all_reduce(ops.concat((x.sum(axis=(0, 2, 3)), Tensor([local_count], ms.float32))))
        count = sums[-1]
        mean = sums[:-1] / count
        centred = x - mean.reshape((1, -1, 1, 1))
        variance = self.all_reduce((centred * centred).sum(axis=(0, 2, 3))) / count
        scale = self.gamma * ops.rsqrt(variance + self.eps)
        y = centred * scale.reshape((1, -1, 1, 1)) + self.beta.reshape((1, -1, 1, 1))
        w = self.momentum
        new_mean = self.moving_mean * (1.0 - w) + ops.stop_gradient(mean) * w
        unbiased = ops.stop_gradient(variance) * (count / ops.maximum(count - 1.0, 1.0))
        new_variance = self.moving_variance * (1.0 - w) + unbiased * w
        y = ops.depend(y, ops.assign(self.moving_mean, new_mean))
        return ops.depend(y, ops.assign(self.moving_variance, new_variance))


def build_sync_batch_norm(num_features: int, eps: float, momentum: float,
                          group_size: Optional[int] = None) -> nn.Cell:
    """The SyncBN layer for this device: ``nn.SyncBatchNorm`` on Ascend in a group, else :class:`SyncBatchNorm2d`.

    Args:
        num_features: channels.
        eps: added to the variance.
        momentum: weight of the new batch statistic (mmpretrain convention).
        group_size: consecutive ranks sharing moments (None: all), see :func:`sync_group_ranks`.
    """
    ranks = sync_group_ranks(group_size)
    if len(ranks) > 1 and ms.get_context('device_target') == 'Ascend':
        world = dist.get_world_size()
        groups = None if len(ranks) == world else [list(range(k, k + len(ranks))) for k in range(0, world, len(ranks))]
        # MindSpore's constructor takes the kept fraction of the moving average.
        return nn.SyncBatchNorm(num_features, eps=eps, momentum=1.0 - momentum, process_groups=groups)
    return SyncBatchNorm2d(num_features, eps=eps, momentum=momentum, group_size=group_size)
