"""AutoAugment (TF ``v0`` and the paper's ImageNet policy) and TF-style RandAugment."""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple, Union

import numpy as np

from effnet_mm.registry import TRANSFORMS

from . import augment_ops as F
from ._rng import get_rng

#: ``(op name, probability, magnitude)``; magnitude semantics depend on the policy family (see below).
PolicyOp = Tuple[str, float, float]
SubPolicy = List[PolicyOp]

_MAX_LEVEL = 10.0

#: tensorflow/tpu autoaugment.py ``policy_v0``: the policy of the released EfficientNet AutoAugment checkpoints.
#: Magnitudes are TF levels 0..10.
POLICY_V0: List[SubPolicy] = [
    [('Equalize', 0.8, 1), ('ShearY', 0.8, 4)],
    [('Color', 0.4, 9), ('Equalize', 0.6, 3)],
    [('Color', 0.4, 1), ('Rotate', 0.6, 8)],
    [('Solarize', 0.8, 3), ('Equalize', 0.4, 7)],
    [('Solarize', 0.4, 2), ('Solarize', 0.6, 2)],
    [('Color', 0.2, 0), ('Equalize', 0.8, 8)],
    [('Equalize', 0.4, 8), ('SolarizeAdd', 0.8, 3)],
    [('ShearX', 0.2, 9), ('Rotate', 0.6, 8)],
    [('Color', 0.6, 1), ('Equalize', 1.0, 2)],
    [('Invert', 0.4, 9), ('Rotate', 0.6, 0)],
    [('Equalize', 1.0, 9), ('ShearY', 0.6, 3)],
    [('Color', 0.4, 7), ('Equalize', 0.6, 0)],
    [('Posterize', 0.4, 6), ('AutoContrast', 0.4, 7)],
    [('Solarize', 0.6, 8), ('Color', 0.6, 9)],
    [('Solarize', 0.2, 4), ('Rotate', 0.8, 9)],
    [('Rotate', 1.0, 7), ('TranslateY', 0.8, 9)],
    [('ShearX', 0.0, 0), ('Solarize', 0.8, 4)],
    [('ShearY', 0.8, 0), ('Color', 0.6, 4)],
    [('Color', 1.0, 0), ('Rotate', 0.6, 2)],
    [('Equalize', 0.8, 4), ('Equalize', 0.0, 8)],
    [('Equalize', 1.0, 4), ('AutoContrast', 0.6, 2)],
    [('ShearY', 0.4, 7), ('SolarizeAdd', 0.6, 7)],
    [('Posterize', 0.8, 2), ('Solarize', 0.6, 10)],
    [('Solarize', 0.6, 8), ('Equalize', 0.6, 1)],
    [('Color', 0.8, 6), ('Rotate', 0.4, 5)],
]

#: The AutoAugment paper's ImageNet policy with mmpretrain's absolute magnitudes (``policies='imagenet'``):
#: Rotate in degrees, Shear as the shear factor, Posterize in bits, Solarize as the threshold, Color / Contrast /
#: Sharpness as ``m`` in ``factor = 1 ± m``.  Rotate, Shear and the enhance ops get a random sign.
POLICY_IMAGENET: List[SubPolicy] = [
    [('Posterize', 0.4, 4), ('Rotate', 0.6, 30.)],
    [('Solarize', 0.6, 256 / 9 * 4), ('AutoContrast', 0.6, 0)],
    [('Equalize', 0.8, 0), ('Equalize', 0.6, 0)],
    [('Posterize', 0.6, 5), ('Posterize', 0.6, 5)],
    [('Equalize', 0.4, 0), ('Solarize', 0.2, 256 / 9 * 5)],
    [('Equalize', 0.4, 0), ('Rotate', 0.8, 30 / 9 * 8)],
    [('Solarize', 0.6, 256 / 9 * 6), ('Equalize', 0.6, 0)],
    [('Posterize', 0.8, 6), ('Equalize', 1., 0)],
    [('Rotate', 0.2, 10.), ('Solarize', 0.6, 256 / 9)],
    [('Equalize', 0.6, 0), ('Posterize', 0.4, 5)],
    [('Rotate', 0.8, 30 / 9 * 8), ('Color', 0.4, 0.)],
    [('Rotate', 0.4, 30.), ('Equalize', 0.6, 0)],
    [('Equalize', 0.0, 0), ('Equalize', 0.8, 0)],
    [('Invert', 0.6, 0), ('Equalize', 1., 0)],
    [('Color', 0.6, 0.4), ('Contrast', 1., 0.8)],
    [('Rotate', 0.8, 30 / 9 * 8), ('Color', 1., 0.2)],
    [('Color', 0.8, 0.8), ('Solarize', 0.8, 256 / 9 * 2)],
    [('Sharpness', 0.4, 0.7), ('Invert', 0.6, 0)],
    [('ShearX', 0.6, 0.3 / 9 * 5), ('Equalize', 1., 0)],
    [('Color', 0.4, 0.), ('Equalize', 0.6, 0)],
    [('Equalize', 0.4, 0), ('Solarize', 0.2, 256 / 9 * 5)],
    [('Solarize', 0.6, 256 / 9 * 4), ('AutoContrast', 0.6, 0)],
    [('Invert', 0.6, 0), ('Equalize', 1., 0)],
    [('Color', 0.6, 0.4), ('Contrast', 1., 0.8)],
    [('Equalize', 0.8, 0), ('Equalize', 0.6, 0)],
]

#: TF ``distort_image_with_randaugment`` op list.
RANDAUGMENT_OPS: Tuple[str, ...] = ('AutoContrast', 'Equalize', 'Invert', 'Rotate', 'Posterize', 'Solarize', 'Color',
                                    'Contrast', 'Brightness', 'Sharpness', 'ShearX', 'ShearY', 'TranslateX',
                                    'TranslateY', 'Cutout', 'SolarizeAdd')

_NO_ARG_OPS = {'AutoContrast': F.auto_contrast, 'Equalize': F.equalize, 'Invert': F.invert}
_ENHANCE_OPS = {'Color': F.color, 'Contrast': F.contrast, 'Brightness': F.brightness, 'Sharpness': F.sharpness}
_GEOMETRIC_OPS = {'Rotate': F.rotate, 'ShearX': F.shear_x, 'ShearY': F.shear_y, 'TranslateX': F.translate_x,
                  'TranslateY': F.translate_y}
KNOWN_OPS = frozenset(RANDAUGMENT_OPS)


def _signed(value: float, rng: np.random.Generator) -> float:
    # TF's _randomly_negate_tensor: floor(uniform + 0.5) picks the sign with probability 1/2.
    return -value if rng.random() < 0.5 else value


def apply_tf_op(img: np.ndarray, name: str, level: float, rng: np.random.Generator, hparams: dict) -> np.ndarray:
    """Apply op ``name`` at TF magnitude ``level`` (0..10, larger allowed) with TF's ``level_to_arg`` rules."""
    m = level / _MAX_LEVEL
    fill = hparams['pad_val']
    if name in _NO_ARG_OPS:
        return _NO_ARG_OPS[name](img)
    if name in _ENHANCE_OPS:
        return _ENHANCE_OPS[name](img, m * 1.8 + 0.1)
    if name == 'Rotate':
        return F.rotate(img, _signed(m * 30.0, rng), fill)
    if name in ('ShearX', 'ShearY'):
        return _GEOMETRIC_OPS[name](img, _signed(m * 0.3, rng), fill)
    if name in ('TranslateX', 'TranslateY'):
        return _GEOMETRIC_OPS[name](img, _signed(m * hparams['translate_const'], rng), fill)
    if name == 'Posterize':
        return F.posterize(img, int(m * 4))
    if name == 'Solarize':
        return F.solarize(img, int(m * 256))
    if name == 'SolarizeAdd':
        return F.solarize_add(img, int(m * 110))
    if name == 'Cutout':
        return F.cutout(img, int(m * hparams['cutout_const']), rng, fill)
    raise KeyError(f'unknown augmentation op {name!r}; known: {sorted(KNOWN_OPS)}')


def apply_mmpretrain_op(img: np.ndarray, name: str, magnitude: float, rng: np.random.Generator,
                        hparams: dict) -> np.ndarray:
    """Apply op ``name`` with an absolute magnitude in mmpretrain's conventions (see :data:`POLICY_IMAGENET`)."""
    fill = hparams['pad_val']
    if name in _NO_ARG_OPS:
        return _NO_ARG_OPS[name](img)
    if name == 'Contrast':
        # mmpretrain/PIL contrast: blend from the mean grey level (not TF's pixel-count quirk).
        gray = F.grayscale(img)
        degenerate = np.full_like(gray, int(gray[:, :, 0].mean() + 0.5))
        return F.blend(degenerate, img, 1.0 + _signed(magnitude, rng))
    if name in _ENHANCE_OPS:
        return _ENHANCE_OPS[name](img, 1.0 + _signed(magnitude, rng))
    if name in _GEOMETRIC_OPS:
        return _GEOMETRIC_OPS[name](img, _signed(magnitude, rng), fill)
    if name == 'Posterize':
        return F.posterize(img, int(magnitude))
    if name == 'Solarize':
        return F.solarize(img, magnitude)
    raise KeyError(f'op {name!r} is not supported in mmpretrain-magnitude policies')


def _hparams(hparams: Optional[dict], defaults: dict) -> dict:
    merged = dict(defaults)
    unknown = set(hparams or {}) - set(defaults)
    if unknown:
        raise ValueError(f'unknown hparams {sorted(unknown)}; supported: {sorted(defaults)}')
    merged.update(hparams or {})
    return merged


def _check_policies(policies: Sequence[SubPolicy]) -> List[SubPolicy]:
    checked = []
    for i, sub in enumerate(policies):
        ops = []
        for op in sub:
            if len(op) != 3 or op[0] not in KNOWN_OPS or not 0 <= float(op[1]) <= 1:
                raise ValueError(f'sub-policy {i}: each op must be (name in {sorted(KNOWN_OPS)}, prob in [0, 1], '
                                 f'level), got {op!r}')
            ops.append((str(op[0]), float(op[1]), float(op[2])))
        if not ops:
            raise ValueError(f'sub-policy {i} is empty')
        checked.append(ops)
    if not checked:
        raise ValueError('AutoAugment needs at least one sub-policy')
    return checked


@TRANSFORMS.register_module()
class AutoAugment:
    """AutoAugment: apply one uniformly drawn sub-policy; each of its ops runs with its own probability.

    ``policies='v0'`` is TF's ``policy_v0`` (25 sub-policies, TF magnitude levels 0..10, fill 128, cutout_const 100,
    translate_const 250), used to train the released EfficientNet "-aa" checkpoints.  ``policies='imagenet'`` is the
    AutoAugment paper's ImageNet policy with mmpretrain's magnitudes.  A list of sub-policies, each a list of
    ``(op name, prob, TF level)``, gives a custom policy with TF magnitude rules.  Apply it after crop and flip, on
    uint8 images.

    ``results['autoaugment_policy']`` records the index of the sub-policy that ran and ``results['augment_ops']``
    the names of the ops actually applied.

    Example config::

        dict(type='AutoAugment', policies='v0')
        dict(type='AutoAugment', policies='imagenet', hparams=dict(pad_val=[104, 116, 124]))

    Args:
        policies: ``'v0'``, ``'imagenet'`` or a custom list of sub-policies.
        hparams: ``pad_val`` (fill of geometric ops and cutout, scalar or per BGR channel), ``cutout_const`` and
            ``translate_const`` (pixels at level 10; TF values by default).
    """

    _DEFAULTS = {'pad_val': 128, 'cutout_const': 100, 'translate_const': 250}

    def __init__(self, policies: Union[str, Sequence[SubPolicy]] = 'v0', hparams: Optional[dict] = None) -> None:
        if isinstance(policies, str):
            tables = {'v0': POLICY_V0, 'imagenet': POLICY_IMAGENET}
            if policies not in tables:
                raise ValueError(f"AutoAugment: policies must be 'v0', 'imagenet' or a list of sub-policies, "
                                 f'got {policies!r}')
            self.family = 'mmpretrain' if policies == 'imagenet' else 'tf'
            self.subpolicies = _check_policies(tables[policies])
        else:
            self.family = 'tf'
            self.subpolicies = _check_policies(policies)
        self.policies = policies
        self.hparams = _hparams(hparams, self._DEFAULTS)

    def __call__(self, results: dict) -> dict:
        rng = get_rng(results)
        index = int(rng.integers(len(self.subpolicies)))
        apply = apply_mmpretrain_op if self.family == 'mmpretrain' else apply_tf_op
        img, applied = results['img'], []
        for name, prob, magnitude in self.subpolicies[index]:
            if rng.random() < prob:
                img = apply(img, name, magnitude, rng, self.hparams)
                applied.append(name)
        results['img'] = img
        results['autoaugment_policy'] = index
        results['augment_ops'] = applied
        return results

    def __repr__(self) -> str:
        name = self.policies if isinstance(self.policies, str) else f'<{len(self.subpolicies)} sub-policies>'
        return f'{type(self).__name__}(policies={name!r}, hparams={self.hparams})'


@TRANSFORMS.register_module()
class RandAugment:
    """TF-style RandAugment: ``num_policies`` times, apply one op drawn uniformly from the 16 TF ops at a fixed level.

    As TF's ``distort_image_with_randaugment``: the drawn op always runs, at ``magnitude_level`` (which may exceed
    10, e.g. 17 for B5 and 28 for B7), with fill 128, cutout_const 40 and translate_const 100.
    ``results['augment_ops']`` records the ops applied.

    Example config::

        dict(type='RandAugment', num_policies=2, magnitude_level=17)

    Args:
        num_policies: number of ops per image (TF ``num_layers``).
        magnitude_level: TF magnitude level.
        ops: op names to draw from (the 16 TF ops by default).
        hparams: ``pad_val``, ``cutout_const``, ``translate_const``.
    """

    _DEFAULTS = {'pad_val': 128, 'cutout_const': 40, 'translate_const': 100}

    def __init__(self, num_policies: int = 2, magnitude_level: float = 10, ops: Sequence[str] = RANDAUGMENT_OPS,
                 hparams: Optional[dict] = None) -> None:
        if num_policies < 0:
            raise ValueError(f'RandAugment: num_policies must be >= 0, got {num_policies}')
        if magnitude_level < 0:
            raise ValueError(f'RandAugment: magnitude_level must be >= 0, got {magnitude_level}')
        unknown = [op for op in ops if op not in KNOWN_OPS]
        if unknown or not ops:
            raise ValueError(f'RandAugment: unknown ops {unknown}; known: {sorted(KNOWN_OPS)}')
        self.num_policies = int(num_policies)
        self.magnitude_level = float(magnitude_level)
        self.ops = tuple(ops)
        self.hparams = _hparams(hparams, self._DEFAULTS)

    def __call__(self, results: dict) -> dict:
        rng = get_rng(results)
        img, applied = results['img'], []
        for _ in range(self.num_policies):
            name = self.ops[int(rng.integers(len(self.ops)))]
            img = apply_tf_op(img, name, self.magnitude_level, rng, self.hparams)
            applied.append(name)
        results['img'] = img
        results['augment_ops'] = applied
        return results

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(num_policies={self.num_policies}, magnitude_level={self.magnitude_level}, '
                f'hparams={self.hparams})')

