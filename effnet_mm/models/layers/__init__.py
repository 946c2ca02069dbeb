from .conv import Conv2dSame, tf_same_padding
from .conv_bn_act import ConvBNAct
from .drop_path import DropPath
from .norm import NORM_TYPES, build_norm_layer, is_norm_layer
from .squeeze_excitation import SqueezeExcitation

__all__ = ['Conv2dSame', 'tf_same_padding', 'ConvBNAct', 'DropPath', 'NORM_TYPES', 'build_norm_layer', 'is_norm_layer',
           'SqueezeExcitation']
