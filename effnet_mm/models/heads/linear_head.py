from __future__ import annotations

import math
from typing import Sequence, Union

import mindspore as ms
from mindspore import nn
from mindspore.common.initializer import Uniform, Zero, initializer

from effnet_mm.registry import MODELS


@MODELS.register_module()
class LinearClsHead(nn.Cell):
    """Dropout + fully-connected classifier on the last pooled feature, with its training loss.

    ``fc`` is initialised like TF's EfficientNet dense layer (uniform in ``±1/sqrt(num_classes)``, zero bias).

    Example config::

        head = dict(type='LinearClsHead', num_classes=1000, in_channels=1280, dropout=0.2,
                    loss=dict(type='CrossEntropyLoss', label_smoothing=0.1), topk=(1, 5))

    Args:
        num_classes: number of classes.
        in_channels: feature width.
        dropout: dropout probability before ``fc`` (the variant's value, see ``effnet_mm.variants``).
        loss: config of the loss cell.
        topk: the top-k accuracies reported for this head.
    """

    def __init__(self,
                 num_classes: int,
                 in_channels: int,
                 dropout: float = 0.0,
                 loss: Union[dict, nn.Cell] = dict(type='CrossEntropyLoss'),
                 topk: Union[int, Sequence[int]] = (1, )) -> None:
        super().__init__()
        if num_classes <= 0:
            raise ValueError(f'LinearClsHead: num_classes must be positive, got {num_classes}')
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f'LinearClsHead: dropout must be in [0, 1), got {dropout}')
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.topk = (topk, ) if isinstance(topk, int) else tuple(topk)
        self.dropout_prob = float(dropout)
        self.dropout = nn.Dropout(p=dropout) if dropout > 0 else None
        self.fc = nn.Dense(
            in_channels,
            num_classes,
            weight_init=initializer(Uniform(1.0 / math.sqrt(num_classes)), (num_classes, in_channels), ms.float32),
            bias_init=initializer(Zero(), (num_classes, ), ms.float32))
        self.loss_module = MODELS.build(loss) if isinstance(loss, dict) else loss

    def construct(self, feats, dropout_mask=None):
        """Logits of the last feature; ``dropout_mask``: optional ``(N, in_channels)`` training factors, 0 (dropped)
        or ``1 / (1 - dropout)`` (drawn on the host by the runner), instead of the dropout layer's own draw."""
        x = feats[-1]
        if self.dropout is not None:
            if dropout_mask is None:
                x = self.dropout(x)
            elif self.training:
                x = x * dropout_mask.astype(x.dtype)
        return self.fc(x)

    def loss(self, feats, targets, dropout_mask=None):
        """Loss of the logits computed from ``feats`` against integer labels ``(N,)`` or soft targets ``(N, C)``."""
        return self.loss_module(self.construct(feats, dropout_mask), targets)
