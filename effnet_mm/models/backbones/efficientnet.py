from __future__ import annotations

from typing import List, Mapping, Optional, Sequence, Tuple, Union

from mindspore import nn

from effnet_mm.ops.mbconv_inference import StemMBConvInference
from effnet_mm.registry import MODELS
from effnet_mm.variants import Variant, get_variant

from ..layers import ConvBNAct, is_norm_layer
from .mbconv import MBConv


def _stage_groups(variant: Variant) -> List[List[dict]]:
    """Block kwargs grouped by output stride: a TF stage with stride 1 joins the previous group (mmpretrain layout).

    Returns five groups (output strides 2, 4, 8, 16, 32) of per-block keyword arguments for :class:`MBConv`,
    without the drop-path rate.
    """
    groups: List[List[dict]] = []
    for stage_idx, stage in enumerate(variant.stages()):
        blocks = [
            dict(
                in_channels=stage.in_channels if i == 0 else stage.out_channels,
                out_channels=stage.out_channels,
                kernel_size=stage.kernel_size,
                stride=stage.stride if i == 0 else 1,
                expand_ratio=stage.expand_ratio,
                se_ratio=stage.se_ratio) for i in range(stage.repeats)
        ]
        if stage_idx == 0 or stage.stride != 1:
            groups.append(blocks)
        else:
            groups[-1].extend(blocks)
    return groups


@MODELS.register_module()
class EfficientNet(nn.Cell):
    """EfficientNet backbone B0–B8 and L2, numerically equivalent to the TensorFlow reference.

    Built from :data:`effnet_mm.variants.VARIANTS` with TF's rounding rules.  By default every conv uses static TF
    "SAME" padding and BN uses eps 1e-3 / decay 0.99 (``norm_cfg=dict(type='BN', eps=1e-3, momentum=0.01)``);
    ``padding`` and ``norm_cfg`` reproduce networks trained otherwise (timm's ``efficientnet_*``: symmetric padding,
    eps 1e-5).  Activations are swish, and block ``i`` of ``N`` drops its residual branch with probability
    ``drop_path_rate * i / N`` (TF's survival formula; the first block never drops).

    The cells are grouped like mmpretrain's EfficientNet into seven ``layers``: ``layers.0`` is the stem,
    ``layers.1``–``layers.5`` hold the blocks with output strides 2, 4, 8, 16 and 32, and ``layers.6`` is the 1x1
    head conv (``round(1280 * width)`` channels).  In eval mode with the CPU kernels the stem and the first block run
    as one kernel per image (:class:`~effnet_mm.ops.mbconv_inference.StemMBConvInference`, ``stem_block``) where the
    first block would run on its whole-block kernel and the stem's output is not one of ``out_indices``.

    Example config::

        backbone = dict(type='EfficientNet', arch='b0', drop_path_rate=0.2, out_indices=(6, ))

    Args:
        arch: variant name, ``'b0'`` ... ``'b8'`` or ``'l2'``.
        drop_path_rate: drop-connect rate (TF ``1 - survival_prob``; 0.2 in the TF recipe).
        out_indices: indices of ``layers`` whose outputs are returned (negative values count from the end).
        frozen_stages: freeze ``layers[0:frozen_stages]``: their parameters stop requiring gradients and their BN
            layers always use (and never update) the moving statistics.
        norm_eval: keep every BN layer on its moving statistics, also in training.
        in_channels: input image channels.
        norm_cfg: normalisation of every conv, mmpretrain style (``type`` ``'BN'`` or ``'SyncBN'``; ``momentum`` is
            the weight of the new batch statistic), see :func:`~effnet_mm.models.layers.build_norm_layer`; None is
            TF's BN.
        padding: ``'same'`` (TF static SAME, every TF-trained checkpoint) or ``'symmetric'`` (PyTorch ``k // 2``).
    """

    num_layers = 7

    def __init__(self,
                 arch: str = 'b0',
                 drop_path_rate: float = 0.2,
                 out_indices: Union[int, Sequence[int]] = (6, ),
                 frozen_stages: int = 0,
                 norm_eval: bool = False,
                 in_channels: int = 3,
                 norm_cfg: Optional[Mapping] = None,
                 padding: str = 'same') -> None:
        super().__init__()
        self.variant = get_variant(arch)
        self.arch = self.variant.name
        self.out_indices = self._normalise_out_indices(out_indices)
        if not 0 <= frozen_stages <= self.num_layers:
            raise ValueError(f'EfficientNet: frozen_stages must be in [0, {self.num_layers}], got {frozen_stages}')
        if not 0.0 <= drop_path_rate < 1.0:
            raise ValueError(f'EfficientNet: drop_path_rate must be in [0, 1), got {drop_path_rate}')
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval
        self.drop_path_rate = drop_path_rate

        groups = _stage_groups(self.variant)
        num_blocks = sum(len(g) for g in groups)
        self.norm_cfg = dict(norm_cfg) if norm_cfg is not None else None
        self.padding = padding
        layers = [ConvBNAct(in_channels, self.variant.stem_channels, 3, stride=2, norm_cfg=norm_cfg, padding=padding)]
        block_idx = 0
        for group in groups:
            blocks = []
            for kwargs in group:
                blocks.append(MBConv(**kwargs, drop_path_rate=drop_path_rate * block_idx / num_blocks,
                                     norm_cfg=norm_cfg, padding=padding))
                block_idx += 1
            layers.append(nn.SequentialCell(blocks))
        layers.append(ConvBNAct(groups[-1][-1]['out_channels'], self.variant.head_channels, 1, norm_cfg=norm_cfg))
        self.layers = nn.CellList(layers)
        drop_blocks = [b for stage in layers[1:-1] for b in stage if b.drop_path is not None]
        for index, block in enumerate(drop_blocks):
            block.drop_path_index = index
        #: Drop probability of every block that has drop path, in the row order of ``drop_masks``.
        self.drop_path_probs: Tuple[float, ...] = tuple(b.drop_path.drop_prob for b in drop_blocks)
        self.out_channels = tuple(self._layer_out_channels(groups)[i] for i in self.out_indices)
        self.stem_block = None
        stem, first = layers[0], layers[1][0]
        if (stem.inference_kernel is not None and first.inference_block is not None and first.expand_conv is None
                and first.stride == 1 and first.depthwise_conv.conv.kernel_padding == 'same'):
            self.stem_block = StemMBConvInference(
                stem.conv.stride, stem.conv.kernel_padding, stem.conv.kernel_size,
                (stem.conv.out_channels, stem.conv.out_channels, first.out_channels),
                (stem.bn.eps, first.depthwise_conv.bn.eps, first.linear_conv.bn.eps))
        self._apply_freeze_and_norm_eval()

    def _normalise_out_indices(self, out_indices: Union[int, Sequence[int]]) -> Tuple[int, ...]:
        if isinstance(out_indices, int):
            out_indices = (out_indices, )
        result = []
        for index in out_indices:
            if not -self.num_layers <= index < self.num_layers:
                raise ValueError(f'EfficientNet: out_indices entry {index} is outside [-{self.num_layers}, '
                                 f'{self.num_layers - 1}]')
            result.append(index % self.num_layers)
        return tuple(sorted(set(result)))

    def _layer_out_channels(self, groups: List[List[dict]]) -> List[int]:
        return [self.variant.stem_channels] + [g[-1]['out_channels'] for g in groups] + [self.variant.head_channels]

    def _apply_freeze_and_norm_eval(self) -> None:
        # Set statically (not in set_train): MindSpore's set_train does not call the children's set_train, so
        # BN layers are pinned to their moving statistics via ``use_batch_statistics=False``.
        for index, layer in enumerate(self.layers):
            frozen = index < self.frozen_stages
            if frozen:
                for param in layer.get_parameters():
                    param.requires_grad = False
            if frozen or self.norm_eval:
                for _, cell in layer.cells_and_names():
                    if is_norm_layer(cell):
                        cell.use_batch_statistics = False

    def construct(self, x, drop_masks=None):
        """Features of ``out_indices``; ``drop_masks``: optional ``(len(drop_path_probs), N)`` drop-path factors
        (see :class:`~effnet_mm.models.layers.DropPath`)."""
        outs = ()
        fuse_stem_block = self._stem_block_applies(x)  # a compile-time constant under jit
        for index, layer in enumerate(self.layers):
            if index == 0:
                x = self._fused_stem_block(x) if fuse_stem_block else layer(x)
            elif index == self.num_layers - 1:
                x = layer(x)
            else:
                for block_index, block in enumerate(layer):
                    if not (fuse_stem_block and index == 1 and block_index == 0):
                        x = block(x, drop_masks)
            if index in self.out_indices:
                outs = outs + (x, )
        return outs

    def _stem_block_applies(self, x) -> bool:
        stem, first = self.layers[0], self.layers[1][0]
        return (self.stem_block is not None and 0 not in self.out_indices and not self.training
                and self.stem_block.applies_to(x) and stem._inference_kernel_applies(x) and first.block_kernel_usable())

    def _fused_stem_block(self, x):
        stem, first = self.layers[0], self.layers[1][0]
        bn = stem.bn
        w_dw, dw_bn, se, w_p, proj_bn = first.kernel_parameters()
        return self.stem_block(x, stem.conv.weight, (bn.gamma, bn.beta, bn.moving_mean, bn.moving_variance), w_dw,
                               dw_bn, se, w_p, proj_bn)
