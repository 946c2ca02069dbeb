from __future__ import annotations

from typing import Optional, Union

import mindspore as ms
from mindspore import nn

from effnet_mm.registry import MODELS


def _build(cfg: Union[dict, nn.Cell, None]) -> Optional[nn.Cell]:
    return MODELS.build(cfg) if isinstance(cfg, dict) else cfg


@MODELS.register_module()
class ImageClassifier(nn.Cell):
    """``data_preprocessor`` → ``backbone`` → ``neck`` → ``head``, the mmpretrain classifier on MindSpore.

    Calling the cell on a raw ``(N, 3, H, W)`` image batch (uint8 or float, 0..255) returns ``(N, num_classes)``
    logits; :meth:`classify` does the same for an already-normalised batch, :meth:`loss` returns the training loss.

    Example config::

        model = dict(
            type='ImageClassifier',
            data_preprocessor=dict(type='ClsDataPreprocessor', mean=[123.675, 116.28, 103.53],
                                   std=[58.395, 57.12, 57.375], to_rgb=True),
            backbone=dict(type='EfficientNet', arch='b0'),
            neck=dict(type='GlobalAveragePooling'),
            head=dict(type='LinearClsHead', num_classes=1000, in_channels=1280, dropout=0.2),
            train_cfg=dict(augments=[dict(type='Mixup', alpha=0.8), dict(type='CutMix', alpha=1.0)]))

    Args:
        backbone: backbone config or cell.
        neck: neck config or cell (optional).
        head: head config or cell.
        data_preprocessor: normalisation config or cell (optional: identity when None).
        train_cfg: training-only settings: ``augments`` (batch augments such as ``Mixup``/``CutMix``, see
            :mod:`effnet_mm.models.batch_augments`) and their ``probs``; the runner applies them.
    """

    def __init__(self,
                 backbone: Union[dict, nn.Cell],
                 head: Union[dict, nn.Cell],
                 neck: Union[dict, nn.Cell, None] = None,
                 data_preprocessor: Union[dict, nn.Cell, None] = None,
                 train_cfg: Optional[dict] = None) -> None:
        super().__init__()
        from effnet_mm.models.batch_augments import build_batch_augments

        self.train_cfg = dict(train_cfg or {})
        self.batch_augments = build_batch_augments(self.train_cfg)
        self.data_preprocessor = _build(data_preprocessor)
        self.backbone = _build(backbone)
        self.neck = _build(neck)
        self.head = _build(head)

    def preprocess(self, inputs):
        """Normalise a raw image batch (only a cast to float32 without a data preprocessor)."""
        if self.data_preprocessor is None:
            return inputs.astype(ms.float32)
        return self.data_preprocessor(inputs)

    def extract_feat(self, x, drop_masks=None):
        """Backbone (+ neck) features of a normalised batch, as a tuple (``drop_masks``: see :meth:`loss`)."""
        feats = self.backbone(x) if drop_masks is None else self.backbone(x, drop_masks)
        if self.neck is not None:
            feats = self.neck(feats)
        return feats

    def classify(self, x):
        """Logits of a normalised batch."""
        return self.head(self.extract_feat(x))

    def construct(self, inputs):
        return self.classify(self.preprocess(inputs))

    def loss(self, inputs, targets, drop_masks=None, dropout_mask=None):
        """Training loss of a raw image batch against integer labels ``(N,)`` or soft targets ``(N, C)``.

        ``drop_masks`` / ``dropout_mask``: the per-sample drop-path and head-dropout factors of this step, drawn on
        the host (:mod:`effnet_mm.engine.randomness`); without them the layers draw their own masks.
        """
        feats = self.extract_feat(self.preprocess(inputs), drop_masks)
        if dropout_mask is None:
            return self.head.loss(feats, targets)
        return self.head.loss(feats, targets, dropout_mask)
