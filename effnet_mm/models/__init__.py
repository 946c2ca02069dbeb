"""Networks; importing this package registers every model component in ``effnet_mm.registry.MODELS``."""
from .backbones import *  # noqa: F401,F403
from .batch_augments import BatchAugments, CutMix, Mixup, build_batch_augments  # noqa: F401
from .classifiers import *  # noqa: F401,F403
from .data_preprocessors import *  # noqa: F401,F403
from .heads import *  # noqa: F401,F403
from .layers import *  # noqa: F401,F403
from .losses import *  # noqa: F401,F403
from .necks import *  # noqa: F401,F403
from .tta import *  # noqa: F401,F403
