"""Deprecated location of :mod:`effnet_mm.runtime.dist` (kept so existing imports keep working)."""
import warnings

from effnet_mm.runtime.dist import (  # noqa: F401
                                    DEVICES,
                                    LAUNCHERS,
                                    all_reduce_sum,
                                    get_rank,
                                    get_world_size,
                                    init_dist,
                                    is_distributed,
                                    select_device,
)

warnings.warn('effnet_mm.engine.dist moved to effnet_mm.runtime.dist', DeprecationWarning, stacklevel=2)
