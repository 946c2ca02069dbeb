from .conv import Conv2dSame, tf_same_padding
from .conv_bn_act import ConvBNAct
from .drop_path import DropPath
from .norm import NORM_LAYER_TYPES, NORM_TYPES, build_norm_layer, is_norm_layer
from .squeeze_excitation import SqueezeExcitation
from .sync_bn import SyncBatchNorm2d

__all__ = ['Conv2dSame', 'tf_same_padding', 'ConvBNAct', 'DropPath', 'NORM_LAYER_TYPES', 'NORM_TYPES',
           'build_norm_layer', 'is_norm_layer', 'SqueezeExcitation', 'SyncBatchNorm2d']
