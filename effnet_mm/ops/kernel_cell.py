"""Base cell of the parameter-free fast kernels (SE squeeze, SiLU, SE scale and gate): one switch, one fallback rule."""
from __future__ import annotations

from typing import Callable

from .fast_conv import Float32Cell, fast_conv_unavailable_reason, warn_fallback_once


class KernelCell(Float32Cell):
    """A float32 cell computing with a custom AOT kernel when available, else with MindSpore ops.

    The kernels are used under the same conditions and switches as the fast convolutions (``EFFNET_MM_FAST_CONV``,
    CPU target, a working compiler); :meth:`enable_fast_conv` switches one layer, and
    :func:`effnet_mm.ops.set_fast_conv` / :func:`effnet_mm.ops.fast_conv_disabled` switch a whole model.
    Subclasses implement :meth:`make_op` and call ``self.op`` in ``construct`` when ``self.fast_conv`` is True.
    """

    def __init__(self) -> None:
        super().__init__()
        self.fast_conv = False
        self.op = None
        self.enable_fast_conv(True)

    def make_op(self) -> Callable:
        """Build (or fetch the shared) ``ops.Custom`` primitive of this kernel; every subclass defines it."""
        raise TypeError(f'{type(self).__name__} does not define make_op()')

    def enable_fast_conv(self, enabled: bool = True) -> bool:
        """Use the custom kernel (True) or MindSpore ops (False); return whether the kernel is now used."""
        reason = fast_conv_unavailable_reason() if enabled else 'switched off'
        if reason is not None:
            if enabled:
                warn_fallback_once(reason)
            self.fast_conv = False
            return False
        if self.op is None:
            self.op = self.make_op()
        self.fast_conv = True
        return True
