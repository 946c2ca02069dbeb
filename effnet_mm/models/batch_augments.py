"""Batch augmentations of training: Mixup and CutMix, configured the mmpretrain way.

Example config::

    model = dict(type='ImageClassifier', ...,
                 train_cfg=dict(augments=[dict(type='Mixup', alpha=0.8), dict(type='CutMix', alpha=1.0)]))

The mixing parameters of a batch are drawn on the host (from a generator the runner seeds with
``(seed, epoch, iteration)``) and become inputs of the compiled training step: the permutation that pairs the
samples, a ``(1, 1, H, W)`` mask (the weight of the sample itself at every pixel: the constant ``lam`` for Mixup,
0 inside the pasted box for CutMix) and the soft targets.  The step computes ``x * mask + x[perm] * (1 - mask)``; the
loss takes the soft targets (label smoothing, when configured, applies to them too).  With several augments one is
chosen per batch (``probs``, uniform by default), like mmpretrain's ``RandomBatchAugment``.
"""
from __future__ import annotations

import math
from typing import List, NamedTuple, Optional, Sequence, Tuple

import numpy as np

from effnet_mm.registry import BATCH_AUGMENTS


class BatchMix(NamedTuple):
    """The host-drawn parameters of one mixed batch (see the module docstring)."""

    perm: np.ndarray  # (N,) int32: the partner of every sample
    mask: np.ndarray  # (1, 1, H, W) float32: weight of the sample itself
    targets: np.ndarray  # (N, C) float32 soft targets, rows sum to 1
    lam: float  # the weight of the sample itself in its target


def _one_hot(labels: np.ndarray, num_classes: int) -> np.ndarray:
    labels = np.asarray(labels, np.int64).reshape(-1)
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f'batch augments: labels must be in [0, {num_classes}), got {labels.min()}..{labels.max()}')
    out = np.zeros((labels.size, num_classes), np.float32)
    out[np.arange(labels.size), labels] = 1.0
    return out


def _mixed_targets(labels: np.ndarray, perm: np.ndarray, lam: float, num_classes: int) -> np.ndarray:
    one_hot = _one_hot(labels, num_classes)
    return (lam * one_hot + (1.0 - lam) * one_hot[perm]).astype(np.float32)


def _check_alpha(name: str, alpha: float) -> float:
    if not isinstance(alpha, (int, float)) or isinstance(alpha, bool) or alpha <= 0:
        raise ValueError(f'{name}: alpha must be a positive number, got {alpha!r}')
    return float(alpha)


@BATCH_AUGMENTS.register_module()
class Mixup:
    """Mixup (Zhang et al. 2018): ``lam ~ Beta(alpha, alpha)``, every sample blended with a random partner.

    Example config::

        model = dict(train_cfg=dict(augments=dict(type='Mixup', alpha=0.8)))

    Args:
        alpha: the Beta distribution parameter.
    """

    def __init__(self, alpha: float) -> None:
        self.alpha = _check_alpha('Mixup', alpha)

    def __call__(self, rng: np.random.Generator, labels: np.ndarray, num_classes: int,
                 image_hw: Tuple[int, int]) -> BatchMix:
        lam = float(rng.beta(self.alpha, self.alpha))
        perm = rng.permutation(len(labels)).astype(np.int32)
        mask = np.full((1, 1, *image_hw), lam, np.float32)
        return BatchMix(perm, mask, _mixed_targets(labels, perm, lam, num_classes), lam)


@BATCH_AUGMENTS.register_module()
class CutMix:
    """CutMix (Yun et al. 2019): a box of a random partner is pasted into every sample.

    ``lam ~ Beta(alpha, alpha)``; the box has area ``(1 - lam) * H * W`` and a uniformly drawn centre, clipped at the
    image border (timm's ``rand_bbox``); the targets use the area actually pasted (timm's ``correct_lam``).

    Example config::

        model = dict(train_cfg=dict(augments=dict(type='CutMix', alpha=1.0)))

    Args:
        alpha: the Beta distribution parameter.
    """

    def __init__(self, alpha: float) -> None:
        self.alpha = _check_alpha('CutMix', alpha)

    def box(self, rng: np.random.Generator, lam: float, image_hw: Tuple[int, int]) -> Tuple[int, int, int, int]:
        """``(y0, y1, x0, x1)`` of the pasted region for the drawn ``lam``."""
        h, w = image_hw
        ratio = math.sqrt(1.0 - lam)
        cut_h, cut_w = int(h * ratio), int(w * ratio)
        cy, cx = int(rng.integers(h)), int(rng.integers(w))
        y0, y1 = int(np.clip(cy - cut_h // 2, 0, h)), int(np.clip(cy + cut_h // 2, 0, h))
        x0, x1 = int(np.clip(cx - cut_w // 2, 0, w)), int(np.clip(cx + cut_w // 2, 0, w))
        return y0, y1, x0, x1

    def __call__(self, rng: np.random.Generator, labels: np.ndarray, num_classes: int,
                 image_hw: Tuple[int, int]) -> BatchMix:
        lam = float(rng.beta(self.alpha, self.alpha))
        perm = rng.permutation(len(labels)).astype(np.int32)
        y0, y1, x0, x1 = self.box(rng, lam, image_hw)
        mask = np.ones((1, 1, *image_hw), np.float32)
        mask[..., y0:y1, x0:x1] = 0.0
        lam = 1.0 - (y1 - y0) * (x1 - x0) / float(image_hw[0] * image_hw[1])
        return BatchMix(perm, mask, _mixed_targets(labels, perm, lam, num_classes), lam)


class BatchAugments:
    """The configured augments, one chosen per batch with ``probs`` (mmpretrain's ``RandomBatchAugment``).

    Args:
        augments: augment configs or objects.
        probs: the probability of each (default uniform); they may sum to less than 1, the rest leaves the batch
            unmixed (one-hot targets).
    """

    def __init__(self, augments: Sequence, probs: Optional[Sequence[float]] = None) -> None:
        self.augments: List = [BATCH_AUGMENTS.build(a) if isinstance(a, dict) else a for a in augments]
        if not self.augments:
            raise ValueError('model.train_cfg.augments is empty')
        if probs is None:
            probs = [1.0 / len(self.augments)] * len(self.augments)
        probs = [float(p) for p in probs]
        if len(probs) != len(self.augments) or min(probs) < 0 or sum(probs) > 1.0 + 1e-6:
            raise ValueError(f'model.train_cfg.probs must give one probability >= 0 per augment, summing to <= 1, '
                             f'got {probs} for {len(self.augments)} augments')
        self.probs = probs

    def __call__(self, rng: np.random.Generator, labels: np.ndarray, num_classes: int,
                 image_hw: Tuple[int, int]) -> BatchMix:
        choice = rng.choice(len(self.augments) + 1, p=self.probs + [max(0.0, 1.0 - sum(self.probs))])
        if choice == len(self.augments):
            count = len(labels)
            return BatchMix(np.arange(count, dtype=np.int32), np.ones((1, 1, *image_hw), np.float32),
                            _one_hot(labels, num_classes), 1.0)
        return self.augments[choice](rng, labels, num_classes, image_hw)


def build_batch_augments(train_cfg: Optional[dict]) -> Optional[BatchAugments]:
    """The batch augments of a classifier's ``train_cfg`` (``augments`` and optional ``probs``), or None."""
    cfg = dict(train_cfg or {})
    unknown = sorted(set(cfg) - {'augments', 'probs'})
    if unknown:
        raise KeyError(f'model.train_cfg: unknown keys {unknown} (supported: augments, probs)')
    augments = cfg.get('augments')
    if not augments:
        return None
    if isinstance(augments, dict):
        augments = [augments]
    return BatchAugments(augments, cfg.get('probs'))
