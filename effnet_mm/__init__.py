"""effnet_mm: EfficientNet image classification on MindSpore, in the OpenMMLab style."""
import os

from .version import __version__

# MindSpore's C++ log level (read when MindSpore is imported): errors only unless the user chose a level.  Its
# default (warnings) floods every tool's output with scheduler and kernel-selection messages.
os.environ.setdefault('GLOG_v', '3')


def _check_numpy() -> None:
    # MindSpore <= 2.10 is built against the numpy 1.x C-API: with numpy 2 its first eager op fails with a
    # confusing "Numpy init failed".  Refuse early with an actionable message instead.
    import numpy

    if int(numpy.__version__.split('.')[0]) >= 2:
        raise ImportError(f'effnet_mm needs numpy<2 (MindSpore binaries use the numpy 1.x C-API), '
                          f'but numpy {numpy.__version__} is installed: pip install "numpy<2"')


_check_numpy()

__all__ = ['__version__']
