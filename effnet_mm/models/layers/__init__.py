from .conv import Conv2dSame, tf_same_padding
from .conv_bn_act import ConvBNAct
from .drop_path import DropPath
from .squeeze_excitation import SqueezeExcitation

__all__ = ['Conv2dSame', 'tf_same_padding', 'ConvBNAct', 'DropPath', 'SqueezeExcitation']
