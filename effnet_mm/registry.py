"""Registries of effnet_mm (scope ``effnet_mm``).

Every buildable component lives in one of these mmengine :class:`~mmengine.registry.Registry` objects.  Their
``locations`` are imported lazily on the first ``build``, so a config with ``default_scope='effnet_mm'`` finds every
registered type without manual imports.  mmengine's own root registries are not used as parents: their registered
implementations are PyTorch modules.
"""
import difflib
from typing import Any

from mmengine.registry import Registry as _MMRegistry

SCOPE = 'effnet_mm'


class Registry(_MMRegistry):
    """mmengine ``Registry`` whose unknown-type error names the registry, the bad name and close matches."""

    def build(self, cfg: dict, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().build(cfg, *args, **kwargs)
        except KeyError:
            obj_type = cfg.get('type') if isinstance(cfg, dict) else None
            if not isinstance(obj_type, str) or self.get(obj_type) is not None:
                raise
            known = sorted(self.module_dict)
            matches = difflib.get_close_matches(obj_type, known, n=3, cutoff=0.5)
            hint = f' Did you mean {", ".join(repr(m) for m in matches)}?' if matches else ''
            raise KeyError(f'type={obj_type!r} is not in the {self.scope}::{self.name} registry.{hint} '
                           f'Registered: {", ".join(known)}') from None

#: Networks: backbones, necks, heads, losses, classifiers, data preprocessors, conv/norm layers.
MODELS = Registry('model', scope=SCOPE, locations=['effnet_mm.models'])
#: Batch augmentations of training (``Mixup``, ``CutMix``), configured in ``model.train_cfg.augments``.
BATCH_AUGMENTS = Registry('batch augment', scope=SCOPE, locations=['effnet_mm.models.batch_augments'])
#: Datasets (``ImageNet``, ``CustomDataset``, the demo dataset).
DATASETS = Registry('dataset', scope=SCOPE, locations=['effnet_mm.datasets'])
#: Data transforms (plain callables on a results dict).
TRANSFORMS = Registry('transform', scope=SCOPE, locations=['effnet_mm.datasets.transforms'])
#: MindSpore optimizers.
OPTIMIZERS = Registry('optimizer', scope=SCOPE, locations=['effnet_mm.engine.optimizers'])
#: Per-iteration learning-rate schedules.
PARAM_SCHEDULERS = Registry('parameter scheduler', scope=SCOPE, locations=['effnet_mm.engine.schedulers'])
#: Training hooks.
HOOKS = Registry('hook', scope=SCOPE, locations=['effnet_mm.engine.hooks'])
#: Evaluation metrics.
METRICS = Registry('metric', scope=SCOPE, locations=['effnet_mm.evaluation'])
#: Runners.
RUNNERS = Registry('runner', scope=SCOPE, locations=['effnet_mm.engine.runner'])
#: Visualisation / scalar-logging backends.
VISBACKENDS = Registry('vis_backend', scope=SCOPE, locations=['effnet_mm.engine.visbackends'])

__all__ = [
    'SCOPE', 'MODELS', 'BATCH_AUGMENTS', 'DATASETS', 'TRANSFORMS', 'OPTIMIZERS', 'PARAM_SCHEDULERS', 'HOOKS', 'METRICS',
    'RUNNERS', 'VISBACKENDS'
]
