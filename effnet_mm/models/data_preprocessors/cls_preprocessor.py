from __future__ import annotations

from typing import Optional, Sequence

from mindspore import nn

from effnet_mm.ops import Normalize
from effnet_mm.registry import MODELS


@MODELS.register_module()
class ClsDataPreprocessor(nn.Cell):
    """Normalises a raw image batch inside the network: ``(x[:, rgb] - mean) / std``.

    Input is an ``(N, 3, H, W)`` uint8 or float batch on the 0..255 scale, BGR as OpenCV loads it when
    ``to_rgb=True``.  ``mean``/``std`` are RGB on the 0..255 scale: ImageNet statistics for the baseline, AutoAugment
    and NoisyStudent checkpoints, ``127.5`` for AdvProp ("01norm").  Keeping normalisation in the graph lets the
    data pipeline ship uint8 (4× less host memory) and ties the normalisation to the config, not to the user.

    Example config::

        data_preprocessor = dict(type='ClsDataPreprocessor', mean=[123.675, 116.28, 103.53],
                                 std=[58.395, 57.12, 57.375], to_rgb=True)

    Args:
        mean: per-channel mean (RGB order), or None for no centering.
        std: per-channel std (RGB order), or None for no scaling.
        to_rgb: reverse the channel order of the input first (BGR → RGB).
    """

    def __init__(self,
                 mean: Optional[Sequence[float]] = None,
                 std: Optional[Sequence[float]] = None,
                 to_rgb: bool = True) -> None:
        super().__init__()
        self.mean_values = None if mean is None else tuple(float(v) for v in mean)
        self.std_values = None if std is None else tuple(float(v) for v in std)
        for name, values in (('mean', self.mean_values), ('std', self.std_values)):
            if values is not None and len(values) != 3:
                raise ValueError(f'ClsDataPreprocessor: {name} must have 3 values (RGB), got {list(values)}')
        if self.std_values is not None and min(self.std_values) <= 0:
            raise ValueError(f'ClsDataPreprocessor: std must be positive, got {list(self.std_values)}')
        self.to_rgb = bool(to_rgb)
        # One pass on a CPU kernel (MindSpore ops elsewhere); set_kernels / kernels_disabled switch it with the model.
        self.normalize = Normalize(self.mean_values, self.std_values, flip_channels=self.to_rgb)

    def construct(self, inputs):
        return self.normalize(inputs)

    def extend_repr(self) -> str:
        return f'mean={self.mean_values}, std={self.std_values}, to_rgb={self.to_rgb}'
