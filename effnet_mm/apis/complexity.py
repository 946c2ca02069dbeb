"""Analytic parameter and FLOPs counts of a built classifier at a given input resolution.

Only convolutions and dense layers are counted (>99 % of EfficientNet's arithmetic); BN, activations, the SE
gating product, pooling and additions are left out, as in mmpretrain's / fvcore's numbers.

Units: **MACs** are multiply-accumulates (what mmpretrain, fvcore and the EfficientNet paper call "FLOPs": B0 at
224 px is 0.39 G); **FLOPs** here count the multiply and the add separately, ``FLOPs = 2 * MACs`` (+ bias adds).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Tuple

#: BatchNorm statistics: parameters of the checkpoint but not learned (MindSpore keeps them as Parameters).
BN_STAT_SUFFIXES = ('moving_mean', 'moving_variance')


@dataclass(frozen=True)
class LayerCost:
    """One conv or dense layer: its output size and cost for one image."""

    name: str
    kind: str
    out_hw: Tuple[int, int]
    params: int
    macs: int
    bias_adds: int


@dataclass
class ModelCost:
    """Totals for one image at ``input_hw``."""

    input_hw: Tuple[int, int]
    learnable_params: int
    bn_stat_params: int
    layers: List[LayerCost] = field(default_factory=list)

    @property
    def macs(self) -> int:
        return sum(layer.macs for layer in self.layers)

    @property
    def flops(self) -> int:
        """Multiplies and adds counted separately: ``2 * MACs`` plus the bias additions."""
        return sum(2 * layer.macs + layer.bias_adds for layer in self.layers)

    @property
    def total_params(self) -> int:
        """Everything a weights-only checkpoint holds (learnable + BN moving statistics)."""
        return self.learnable_params + self.bn_stat_params


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def _is_within(name: str, prefixes: List[str]) -> bool:
    return any(name.startswith(p + '.') for p in prefixes)


def count_model_cost(model, input_hw: Tuple[int, int]) -> ModelCost:
    """Count parameters and per-layer MACs of ``model`` for one ``input_hw`` image.

    The spatial size is propagated through the convs in execution order (which is the cells' definition order in
    effnet_mm's EfficientNet) with TF "SAME" output sizes ``ceil(in / stride)``; convs inside a
    ``SqueezeExcitation`` act on the pooled ``1x1`` map and do not change the running size.  Works on a model built
    with ``build_classifier(cfg, init_weights=False)`` (shapes only).

    Raises:
        TypeError: the model contains a conv type whose geometry this function does not know.
    """
    from mindspore import nn

    from effnet_mm.models.layers import Conv2dSame, SqueezeExcitation

    learnable = bn_stats = 0
    for name, param in model.parameters_and_names():
        count = 1
        for dim in param.shape:
            count *= int(dim)
        if name.endswith(BN_STAT_SUFFIXES):
            bn_stats += count
        else:
            learnable += count

    h, w = (int(v) for v in input_hw)
    se_prefixes: List[str] = []
    layers: List[LayerCost] = []
    for name, cell in model.cells_and_names():
        if isinstance(cell, SqueezeExcitation):
            se_prefixes.append(name)
        if isinstance(cell, nn.Conv2d):
            raise TypeError(f'count_model_cost: {name} is a plain nn.Conv2d; only Conv2dSame geometry is modelled')
        if isinstance(cell, Conv2dSame):
            in_pooled = _is_within(name, se_prefixes)
            oh, ow = (1, 1) if in_pooled else (_ceil_div(h, cell.stride), _ceil_div(w, cell.stride))
            k = cell.kernel_size
            weight = cell.out_channels * (cell.in_channels // cell.groups) * k * k
            bias = cell.out_channels if cell.has_bias else 0
            layers.append(LayerCost(name, 'conv', (oh, ow), weight + bias, weight * oh * ow, bias * oh * ow))
            if not in_pooled:
                h, w = oh, ow
        elif isinstance(cell, nn.Dense):
            weight = cell.in_channels * cell.out_channels
            bias = cell.out_channels if cell.has_bias else 0
            layers.append(LayerCost(name, 'dense', (1, 1), weight + bias, weight, bias))
    return ModelCost((int(input_hw[0]), int(input_hw[1])), learnable, bn_stats, layers)
