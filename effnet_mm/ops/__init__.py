"""CPU kernels (MindSpore ``ops.Custom`` AOT, C++/OpenMP) for the layers MindSpore runs slowly on CPU: k x k convs
(``Conv2dSame``), BatchNorm + SiLU (:class:`BatchNormAct2d`), :class:`SiLU`, the SE :class:`SpatialMean` (also the
neck's global pooling) and :class:`SigmoidGate`, the data preprocessor's :class:`Normalize`; see
docs/performance.md.

Environment variables:

* ``EFFNET_MM_KERNELS=0`` — never use the kernels (MindSpore's ops everywhere; old name ``EFFNET_MM_FAST_CONV``);
* ``EFFNET_MM_KERNEL_CACHE=<dir>`` — where the compiled library is cached;
* ``EFFNET_MM_NUM_THREADS=<n>`` — threads per kernel (default ``OMP_NUM_THREADS`` as the process started with,
  else every core);
* ``EFFNET_MM_KERNEL_PROFILE=1`` — time every kernel call (read with :func:`kernel_stats`);
* ``CXX`` — compiler (default ``g++``); ``MS_CUSTOM_AOT_WHITE_LIST`` is respected.
"""
import warnings

from .batchnorm import BatchNormAct2d, FusedBatchNormAct
from .build import KernelBuildError, cache_dir, library_path
from .conv import conv_op, supported_conv
from .elementwise import SigmoidGate, SiLU
from .kernel_cell import ENABLE_ENV, Float32Cell, KernelCell, KernelSwitch, kernels_unavailable_reason
from .normalize import Normalize
from .profile import kernel_stats, reset_kernel_stats
from .spatial_mean import SpatialMean
from .switch import fast_conv_disabled, kernels_disabled, set_fast_conv, set_kernels


def fast_conv_unavailable_reason():
    """Deprecated name of :func:`kernels_unavailable_reason`."""
    warnings.warn('fast_conv_unavailable_reason() is deprecated; use kernels_unavailable_reason()',
                  DeprecationWarning, stacklevel=2)
    return kernels_unavailable_reason()


__all__ = [
    'BatchNormAct2d', 'ENABLE_ENV', 'Float32Cell', 'FusedBatchNormAct', 'KernelBuildError', 'KernelCell',
    'KernelSwitch', 'Normalize', 'SiLU', 'SigmoidGate', 'SpatialMean', 'cache_dir', 'conv_op', 'fast_conv_disabled',
    'fast_conv_unavailable_reason', 'kernel_stats', 'kernels_disabled', 'kernels_unavailable_reason', 'library_path',
    'reset_kernel_stats', 'set_fast_conv', 'set_kernels', 'supported_conv'
]
