from .efficientnet import EfficientNet
from .mbconv import MBConv

__all__ = ['EfficientNet', 'MBConv']
