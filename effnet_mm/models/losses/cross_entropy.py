from __future__ import annotations

from mindspore import nn, ops

from effnet_mm.registry import MODELS


@MODELS.register_module()
class CrossEntropyLoss(nn.Cell):
    """Softmax cross-entropy with optional label smoothing, averaged over the batch.

    With smoothing ``eps`` over ``K`` classes the target is ``(1 - eps) * one_hot + eps / K`` (TF's
    ``label_smoothing``; 0.1 in the EfficientNet recipe).  Targets are integer labels ``(N,)`` or soft targets
    ``(N, K)`` whose rows sum to 1 (Mixup/CutMix), which are smoothed the same way.

    Example config::

        loss = dict(type='CrossEntropyLoss', label_smoothing=0.1, loss_weight=1.0)

    Args:
        label_smoothing: smoothing factor in [0, 1).
        loss_weight: multiplier of the loss.
    """

    def __init__(self, label_smoothing: float = 0.0, loss_weight: float = 1.0) -> None:
        super().__init__()
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f'CrossEntropyLoss: label_smoothing must be in [0, 1), got {label_smoothing}')
        self.label_smoothing = float(label_smoothing)
        self.loss_weight = float(loss_weight)

    def construct(self, logits, labels):
        num_classes = logits.shape[-1]
        log_probs = ops.log_softmax(logits.astype('float32'), axis=-1)
        if labels.ndim == 1:
            target = ops.one_hot(labels.astype('int32'), num_classes, 1.0 - self.label_smoothing, 0.0)
        else:
            target = labels.astype('float32') * (1.0 - self.label_smoothing)
        target = target + self.label_smoothing / num_classes
        return -(target * log_probs).sum(axis=-1).mean() * self.loss_weight
