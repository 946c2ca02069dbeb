from __future__ import annotations

from typing import Mapping, Optional

from mindspore import nn

from effnet_mm.ops.batchnorm import on_moving_stats_kernel
from effnet_mm.ops.depthwise_stage import DepthwiseStage
from effnet_mm.ops.mbconv_inference import MBConvInference
from effnet_mm.registry import MODELS

from ..layers import ConvBNAct, DropPath, SqueezeExcitation


@MODELS.register_module()
class MBConv(nn.Cell):
    """EfficientNet mobile inverted-bottleneck block (TF ``MBConvBlock``).

    ``expand_conv`` (1x1, only when ``expand_ratio != 1``) → ``depthwise_conv`` (k×k, carries the stride) →
    ``se`` → ``linear_conv`` (1x1 projection, BN, no activation) → drop-connect + identity skip when the block keeps
    its shape (stride 1 and ``in_channels == out_channels``).  With ``expand_ratio == 1`` this is TF's
    depthwise-separable first-stage block.

    In eval mode with the CPU kernels, blocks with SE on large maps (from 28x28, batches of at least one image per
    kernel thread) run as one kernel per image (:class:`~effnet_mm.ops.mbconv_inference.MBConvInference`,
    ``inference_block``), and elsewhere the expansion BN + SiLU, the depthwise conv, its BN + SiLU and the SE run as
    one kernel (:class:`~effnet_mm.ops.depthwise_stage.DepthwiseStage`, ``inference_stage``) on the same
    parameters; the result is that of the separate layers to float32 rounding.

    Example config::

        block = dict(type='MBConv', in_channels=16, out_channels=24, kernel_size=3, stride=2, expand_ratio=6)

    Args:
        in_channels: block input channels.
        out_channels: block output channels.
        kernel_size: depthwise kernel size.
        stride: depthwise stride.
        expand_ratio: width multiplier of the hidden layer.
        se_ratio: SE bottleneck width relative to ``in_channels`` (0 disables SE).
        drop_path_rate: drop-connect probability of the residual branch.
        norm_cfg: normalisation of every conv (None: TF's BN, see :func:`~effnet_mm.models.layers.build_norm_layer`).
        padding: ``'same'`` (TF) or ``'symmetric'`` (PyTorch ``k // 2``) padding of the depthwise conv.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 kernel_size: int,
                 stride: int,
                 expand_ratio: int,
                 se_ratio: float = 0.25,
                 drop_path_rate: float = 0.0,
                 norm_cfg: Optional[Mapping] = None,
                 padding: str = 'same') -> None:
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = kernel_size
        self.stride = stride
        self.expand_ratio = expand_ratio
        hidden = in_channels * expand_ratio
        self.expand_conv = ConvBNAct(in_channels, hidden, 1, norm_cfg=norm_cfg) if expand_ratio != 1 else None
        self.depthwise_conv = ConvBNAct(hidden, hidden, kernel_size, stride=stride, groups=hidden, norm_cfg=norm_cfg,
                                        padding=padding)
        self.se = None
        if se_ratio > 0:
            self.se = SqueezeExcitation(hidden, max(1, int(in_channels * se_ratio)))
        self.linear_conv = ConvBNAct(hidden, out_channels, 1, act=False, norm_cfg=norm_cfg)
        self.has_skip = stride == 1 and in_channels == out_channels
        self.drop_path = DropPath(drop_path_rate) if self.has_skip and drop_path_rate > 0 else None
        #: Row of this block in the backbone's ``drop_masks`` (set by :class:`EfficientNet`).
        self.drop_path_index = 0
        self.inference_stage = None
        dw_conv = self.depthwise_conv.conv
        if dw_conv.kernel_kind == 'depthwise' and self._silu_bn(self.depthwise_conv.bn):
            pre_eps = self.expand_conv.bn.eps if self.expand_conv is not None else 1e-3
            self.inference_stage = DepthwiseStage(stride, dw_conv.kernel_padding, self.expand_conv is not None,
                                                  self.depthwise_conv.bn.eps, pre_eps, se=self.se is not None)
        self.inference_block = None
        if self.inference_stage is not None and self.se is not None and self._fixed_bn(self.linear_conv.bn):
            self.inference_block = MBConvInference(stride, dw_conv.kernel_padding, (in_channels, hidden, out_channels),
                                                   (self.depthwise_conv.bn.eps, pre_eps, self.linear_conv.bn.eps))

    def construct(self, x, drop_masks=None):
        """``drop_masks``: optional ``(num_drop_path_blocks, N)`` per-sample drop-path factors of the backbone."""
        if self._inference_block_applies(x):
            return self._fused_block(x)
        if self._inference_stage_applies():
            out = self._fused_stage(x)
        else:
            out = x
            if self.expand_conv is not None:
                out = self.expand_conv(out)
            out = self.depthwise_conv(out)
            if self.se is not None:
                out = self.se(out)
        out = self.linear_conv(out)
        if self.has_skip:
            if self.drop_path is not None:
                keep = None if drop_masks is None else drop_masks[self.drop_path_index]
                out = self.drop_path(out, keep)
            out = out + x
        return out

    @staticmethod
    def _silu_bn(bn) -> bool:
        return on_moving_stats_kernel(bn, silu=True)

    @staticmethod
    def _fixed_bn(bn) -> bool:
        return on_moving_stats_kernel(bn, silu=False)

    def _inference_stage_applies(self) -> bool:
        # Compile-time constants under jit.  Checked at every call: AMP may wrap the BN layers, set_kernels may switch.
        return (not self.training and self.inference_stage is not None and self.inference_stage.use_kernel
                and self.depthwise_conv.conv.use_kernel and self._silu_bn(self.depthwise_conv.bn)
                and (self.expand_conv is None or self._silu_bn(self.expand_conv.bn))
                and (self.se is None or self.se.gate.use_kernel))

    def _inference_block_applies(self, x) -> bool:
        return self.inference_block is not None and self.inference_block.applies_to(x) and self.block_kernel_usable()

    def block_kernel_usable(self) -> bool:
        """Whether this block's layers may run as one eval kernel (whatever the input): eval mode, kernels on, every BN
        on its moving statistics.  Also asked by the backbone for its stem + first block kernel."""
        return (self.inference_block is not None and self.inference_block.use_kernel
                and self._inference_stage_applies() and self._fixed_bn(self.linear_conv.bn)
                and self.linear_conv.conv.use_kernel and (self.expand_conv is None or self.expand_conv.conv.use_kernel))

    def kernel_parameters(self) -> tuple:
        """``(w_dw, dw_bn, se, w_p, proj_bn)`` of a block without expansion, BN tuples (gamma, beta, moving_mean,
        moving_variance), ``se`` (w1, b1, w2, b2): what the block kernels take after the expansion."""
        dw, bn, proj = self.depthwise_conv, self.depthwise_conv.bn, self.linear_conv
        return (dw.conv.weight, (bn.gamma, bn.beta, bn.moving_mean, bn.moving_variance),
                (self.se.conv1.weight, self.se.conv1.bias, self.se.conv2.weight, self.se.conv2.bias), proj.conv.weight,
                (proj.bn.gamma, proj.bn.beta, proj.bn.moving_mean, proj.bn.moving_variance))

    def _fused_stage(self, x):
        conv, bn = self.depthwise_conv.conv, self.depthwise_conv.bn
        se = () if self.se is None else (self.se.conv1.weight, self.se.conv1.bias, self.se.conv2.weight,
                                         self.se.conv2.bias)
        if self.expand_conv is None:
            out, _ = self.inference_stage(x, conv.weight, bn.gamma, bn.beta, bn.moving_mean, bn.moving_variance,
                                          None, None, None, None, *se)
        else:
            pre = self.expand_conv.bn
            out, _ = self.inference_stage(self.expand_conv.conv(x), conv.weight, bn.gamma, bn.beta, bn.moving_mean,
                                          bn.moving_variance, pre.gamma, pre.beta, pre.moving_mean,
                                          pre.moving_variance, *se)
        return out

    def _fused_block(self, x):
        pre = None
        w_e = None
        if self.expand_conv is not None:
            w_e = self.expand_conv.conv.weight
            pre = (self.expand_conv.bn.gamma, self.expand_conv.bn.beta, self.expand_conv.bn.moving_mean,
                   self.expand_conv.bn.moving_variance)
        w_dw, bn, se, w_p, proj_bn = self.kernel_parameters()
        return self.inference_block(x, w_e, w_dw, bn, pre, se, w_p, proj_bn)
