"""Fast CPU kernels (MindSpore ``ops.Custom`` AOT, C++/OpenMP) used by ``Conv2dSame``; see docs/performance.md.

Environment variables:

* ``EFFNET_MM_FAST_CONV=0`` — never use the kernels (MindSpore's ``Conv2D`` everywhere);
* ``EFFNET_MM_KERNEL_CACHE=<dir>`` — where the compiled library is cached;
* ``CXX`` — compiler (default ``g++``); ``MS_CUSTOM_AOT_WHITE_LIST`` is respected.
"""
from .build import KernelBuildError, cache_dir, library_path
from .fast_conv import ENABLE_ENV, conv_op, fast_conv_unavailable_reason, grad_ops, supported_conv
from .switch import fast_conv_disabled, set_fast_conv

__all__ = [
    'ENABLE_ENV', 'KernelBuildError', 'cache_dir', 'conv_op', 'fast_conv_disabled', 'fast_conv_unavailable_reason',
    'grad_ops', 'library_path', 'set_fast_conv', 'supported_conv'
]
