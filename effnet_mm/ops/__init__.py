"""Fast CPU kernels (MindSpore ``ops.Custom`` AOT, C++/OpenMP) used by ``Conv2dSame``, and the parameter-free
``SpatialMean`` / ``SiLU`` / ``ChannelScale`` / ``SigmoidGate`` cells used by the blocks; see docs/performance.md.

Environment variables:

* ``EFFNET_MM_FAST_CONV=0`` — never use the kernels (MindSpore's ``Conv2D`` everywhere);
* ``EFFNET_MM_KERNEL_CACHE=<dir>`` — where the compiled library is cached;
* ``EFFNET_MM_NUM_THREADS=<n>`` — threads per kernel (default ``OMP_NUM_THREADS``, else half the cores);
* ``CXX`` — compiler (default ``g++``); ``MS_CUSTOM_AOT_WHITE_LIST`` is respected.
"""
from .batchnorm import FusedBatchNormAct
from .build import KernelBuildError, cache_dir, library_path
from .elementwise import ChannelScale, SigmoidGate, SiLU
from .fast_conv import ENABLE_ENV, conv_op, fast_conv_unavailable_reason, grad_ops, supported_conv
from .kernel_cell import KernelCell
from .spatial_mean import SpatialMean
from .switch import fast_conv_disabled, set_fast_conv

__all__ = [
    'ChannelScale', 'ENABLE_ENV', 'FusedBatchNormAct', 'KernelBuildError', 'KernelCell', 'SiLU', 'SigmoidGate',
    'SpatialMean', 'cache_dir', 'conv_op', 'fast_conv_disabled', 'fast_conv_unavailable_reason', 'grad_ops',
    'library_path', 'set_fast_conv', 'supported_conv'
]
