from __future__ import annotations

from mindspore import nn, ops

from effnet_mm.registry import MODELS


@MODELS.register_module()
class GlobalAveragePooling(nn.Cell):
    """Global average pooling of every backbone output: ``(N, C, H, W)`` → ``(N, C)``.

    Takes and returns a tuple, like mmpretrain's neck of the same name.

    Example config::

        neck = dict(type='GlobalAveragePooling')
    """

    def construct(self, inputs):
        return tuple(ops.mean(x, (2, 3), keep_dims=False) for x in inputs)
