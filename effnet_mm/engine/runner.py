"""The runner: builds a run from a config and drives ``train()``, ``val()`` and ``test()``, shaped like mmengine's.

Same config keys (``model``, ``*_dataloader``, ``train_cfg``, ``optim_wrapper``, ``param_scheduler``,
``val_evaluator``, ``default_hooks``, ``custom_hooks``, ``auto_scale_lr``, ``load_from``, ``resume``,
``randomness``, ``launcher``, ``work_dir``) and work-dir layout (``<work_dir>/<timestamp>/<timestamp>.log``,
``vis_data/scalars.json``, checkpoints and ``last_checkpoint`` in ``<work_dir>``).  The parts live in their own
modules: the loops (:mod:`.loops`), the compiled step (:mod:`.train_step`), the optimizer settings
(:mod:`.optim_wrapper`), checkpoints (:mod:`.checkpoints`), random state (:mod:`.randomness`), hooks (:mod:`.hooks`).
"""
from __future__ import annotations

import copy
import os
import time
from typing import Callable, Dict, List, Optional, Union

import numpy as np
from mindspore import Tensor, nn
from mmengine.config import Config
from mmengine.logging import MMLogger

from effnet_mm.registry import HOOKS, METRICS, RUNNERS, VISBACKENDS
from effnet_mm.runtime import dist
from effnet_mm.runtime.config import resolve_work_dir, to_plain
from effnet_mm.runtime.config_check import RUNNER_KEYS, TRAIN_CFG_KEYS
from effnet_mm.runtime.model import build_classifier
from effnet_mm.runtime.weights import load_weights

from .checkpoints import CheckpointFolder, find_resume_checkpoint, restore_training_checkpoint
from .hooks import CheckpointHook, Hook, priority_value
from .loops import LOOP_TYPES, EvalLoop, TrainLoop
from .optim_wrapper import OptimWrapper, build_optim_wrapper
from .randomness import StepMasks, seed_everything
from .schedulers import LRSchedule
from .train_step import TrainStep, make_eval_step

#: Hooks every run has unless ``default_hooks`` sets them to None (mmengine's defaults).
DEFAULT_HOOKS = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=10),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', interval=1),
    sampler_seed=dict(type='DistSamplerSeedHook'),
)


def _build_loader(cfg: object, seed: int):
    if not isinstance(cfg, dict):
        return cfg  # an already built loader object following the Loaders contract
    from effnet_mm.datasets import build_dataloader
    return build_dataloader(cfg, seed=seed, shard_id=dist.get_rank(), num_shards=dist.get_world_size())


def _positive_int(cfg: dict, key: str, where: str, default: Optional[int] = None) -> int:
    value = cfg.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f'{where}.{key} must be an int >= 1, got {value!r}')
    return value


@RUNNERS.register_module()
class Runner:
    """Builds everything from a config and runs ``train()``, ``val()`` or ``test()``.

    Example config (the keys a training config defines; see ``configs/_base_``)::

        model = dict(type='ImageClassifier', ...)
        train_dataloader = dict(batch_size=32, num_workers=2, sampler=dict(type='DefaultSampler', shuffle=True),
                                dataset=dict(type='DemoDataset', ...))
        val_dataloader = dict(...); val_evaluator = dict(type='Accuracy', topk=(1, 5))
        train_cfg = dict(by_epoch=True, max_epochs=10, val_interval=1)   # or by_epoch=False, max_iters=...
        optim_wrapper = dict(optimizer=dict(type='RMSProp', lr=0.016, alpha=0.9, momentum=0.9, eps=1e-3,
                                            weight_decay=1e-5),
                             paramwise_cfg=dict(norm_decay_mult=0.0), clip_grad=dict(max_norm=10.0),
                             accumulative_counts=1)
        param_scheduler = [dict(type='LinearLR', start_factor=0.01, end=1, convert_to_iter_based=True),
                           dict(type='CosineAnnealingLR', T_max=9, begin=1, end=10)]
        auto_scale_lr = dict(base_batch_size=256, enable=False)
        custom_hooks = [dict(type='EMAHook', momentum=1e-4)]
        randomness = dict(seed=0)

    Dataloaders may also be given as built loader objects (anything following the Loaders contract of
    docs/design.md).

    Attributes (the state hooks read):
        epoch, iter, batch_in_epoch: progress (completed epochs, iterations, batches of the current epoch).
        lr: learning rate of the coming update (set by ``ParamSchedulerHook``; the base LR without it).
        update_index: index of the optimizer update the current iteration belongs to.
        updated: whether the last iteration applied an optimizer update.
    """

    def __init__(self,
                 model: Union[dict, nn.Cell],
                 work_dir: str,
                 train_dataloader: object = None,
                 val_dataloader: object = None,
                 test_dataloader: object = None,
                 train_cfg: Optional[dict] = None,
                 val_cfg: Optional[dict] = None,
                 test_cfg: Optional[dict] = None,
                 optim_wrapper: Optional[dict] = None,
                 param_scheduler: Union[dict, List[dict], None] = None,
                 val_evaluator: Union[dict, List[dict], None] = None,
                 test_evaluator: Union[dict, List[dict], None] = None,
                 auto_scale_lr: Optional[dict] = None,
                 default_hooks: Optional[dict] = None,
                 custom_hooks: Optional[List[dict]] = None,
                 data_preprocessor: Optional[dict] = None,
                 load_from: Optional[str] = None,
                 resume: Union[bool, str] = False,
                 randomness: Optional[dict] = None,
                 launcher: str = 'none',
                 env_cfg: Optional[dict] = None,
                 log_level: str = 'INFO',
                 vis_backends: Optional[List[dict]] = None,
                 experiment_name: Optional[str] = None,
                 cfg: Optional[Config] = None) -> None:
        env_cfg = to_plain(env_cfg) or {}
        dist.select_device(env_cfg.get('device_target'))
        dist.init_dist(launcher)
        self.rank = dist.get_rank()
        self.world_size = dist.get_world_size()
        self.work_dir = os.path.abspath(work_dir)
        self.cfg = cfg
        self.timestamp = experiment_name or time.strftime('%Y%m%d_%H%M%S', time.localtime())
        self.log_dir = os.path.join(self.work_dir, self.timestamp)
        self._setup_logging(log_level, vis_backends)
        self._apply_env(env_cfg)

        self.seed = self._resolve_seed(to_plain(randomness or {}).get('seed'))
        seed_everything(self.seed)
        if self.world_size > 1:
            import mindspore as ms
            ms.set_auto_parallel_context(parallel_mode=ms.ParallelMode.DATA_PARALLEL, gradients_mean=True)

        if isinstance(model, nn.Cell):
            self.model = model
        else:
            self.model = build_classifier(Config(dict(model=to_plain(model), data_preprocessor=data_preprocessor)))

        self._loader_cfgs = {'train': to_plain(train_dataloader), 'val': to_plain(val_dataloader),
                             'test': to_plain(test_dataloader)}
        self._loaders: Dict[str, object] = {}
        self.train_cfg = dict(to_plain(train_cfg) or {})
        self.val_cfg = val_cfg
        self.test_cfg = test_cfg
        self.optim_wrapper_cfg = to_plain(optim_wrapper)
        scheduler_cfg = to_plain(param_scheduler) or []
        self.param_scheduler_cfg = [scheduler_cfg] if isinstance(scheduler_cfg, dict) else list(scheduler_cfg)
        self.evaluator_cfgs = {'val': to_plain(val_evaluator), 'test': to_plain(test_evaluator)}
        self.auto_scale_lr = to_plain(auto_scale_lr) or {}
        self.load_from = load_from
        self.resume_from = resume
        self.hooks: List[Hook] = self._build_hooks(to_plain(default_hooks) or {}, to_plain(custom_hooks) or [])
        checkpoint_hook = self.get_hook(CheckpointHook)
        self.checkpoint_folder = CheckpointFolder(checkpoint_hook.out_dir if checkpoint_hook and
                                                  checkpoint_hook.out_dir else self.work_dir)

        self.epoch = 0
        self.iter = 0
        self.batch_in_epoch = 0
        self.by_epoch = True
        self.max_epochs = 0
        self.max_iters = 0
        self.lr = float('nan')
        self.update_index = 0
        self.updated = False
        self.amp_consecutive_skips = 0
        self.message: Dict[str, float] = {}
        self.dataset_meta: Dict[str, object] = {}
        self.eval_mode = 'val'
        self.eval_batches = 0
        #: ``(evaluated, expected)`` samples of the last evaluation, all ranks (``skip_corrupt`` may leave out some).
        self.eval_counts = (0, 0)
        self.optim_wrapper: Optional[OptimWrapper] = None
        self.lr_schedule: Optional[LRSchedule] = None
        self.train_step: Optional[TrainStep] = None
        self.step_masks: Optional[StepMasks] = None
        self._eval_step = None
        self._metrics: Dict[str, list] = {}
        self._weights_loaded = False

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_cfg(cls, cfg: Config) -> Runner:
        """Build a runner from a full config (``work_dir`` defaults to ``./work_dirs/<config stem>``)."""
        cfg = copy.deepcopy(cfg)
        cfg.work_dir = resolve_work_dir(cfg)
        if 'model' not in cfg:
            raise KeyError(f'{cfg.filename}: the config has no "model"')
        vis_backends = cfg.get('vis_backends')
        if vis_backends is None and isinstance(cfg.get('visualizer'), dict):
            vis_backends = cfg.visualizer.get('vis_backends')
        kwargs = {key: cfg.get(key) for key in RUNNER_KEYS if key in cfg and key not in ('vis_backends', 'visualizer')}
        kwargs.setdefault('resume', False)
        return cls(vis_backends=vis_backends, cfg=cfg, **kwargs)

    def _setup_logging(self, log_level: str, vis_backends: Optional[List[dict]]) -> None:
        log_file = None
        if self.rank == 0:
            os.makedirs(self.log_dir, exist_ok=True)
            log_file = os.path.join(self.log_dir, f'{self.timestamp}.log')
        self.logger = MMLogger.get_instance(f'effnet_mm_{self.timestamp}_{id(self)}', logger_name='effnet_mm',
                                            log_file=log_file, log_level=log_level)
        if self.rank != 0:
            # MMLogger sees rank 0 without torch.distributed: silence the other ranks ourselves.
            self.logger.setLevel('ERROR')
        self.vis_backends = []
        if self.rank == 0:
            for backend in to_plain(vis_backends) or [dict(type='LocalVisBackend')]:
                self.vis_backends.append(
                    VISBACKENDS.build(backend, default_args=dict(save_dir=os.path.join(self.log_dir, 'vis_data'))))
        if self.rank == 0 and self.cfg is not None:
            stem = os.path.basename(self.cfg.filename) if self.cfg.filename else 'config.py'
            self.cfg.dump(os.path.join(self.log_dir, stem))
            for backend in self.vis_backends:
                backend.add_config(self.cfg.pretty_text)
            self.logger.info(f'Config:\n{self.cfg.pretty_text}')

    def _apply_env(self, env_cfg: dict) -> None:
        threads = env_cfg.get('cpu_threads')
        if threads:
            import mindspore as ms

            # Can be set once per process; a second runner in the same process keeps the first value.
            try:
                ms.device_context.cpu.op_tuning.threads_num(int(threads))
            except RuntimeError:
                pass

    def _resolve_seed(self, seed: Optional[int]) -> int:
        if seed is None:
            # Like mmengine: a random seed, made identical on all ranks.
            seed = int(np.random.SeedSequence().entropy % (2**31 - 1)) if self.rank == 0 else 0
            seed = int(dist.all_reduce_sum(np.array([seed], np.float64))[0])
        if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
            raise ValueError(f'randomness.seed must be a non-negative int, got {seed!r}')
        return seed

    def _build_hooks(self, default_hooks: dict, custom_hooks: List[dict]) -> List[Hook]:
        merged = dict(DEFAULT_HOOKS)
        merged.update(default_hooks)
        hooks = []
        for hook_cfg in list(merged.values()) + list(custom_hooks):
            if hook_cfg is None:
                continue
            if isinstance(hook_cfg, Hook):
                hooks.append(hook_cfg)
                continue
            hook_cfg = dict(hook_cfg)
            priority = hook_cfg.pop('priority', None)
            hook = HOOKS.build(hook_cfg)
            if priority is not None:
                priority_value(priority)  # validates it
                hook.priority = priority
            hooks.append(hook)
        return sorted(hooks, key=lambda h: priority_value(h.priority))

    def call_hook(self, name: str, *args, **kwargs) -> None:
        """Call hook point ``name`` of every hook in priority order."""
        for hook in self.hooks:
            getattr(hook, name)(self, *args, **kwargs)

    def get_hook(self, hook_type: type) -> Optional[Hook]:
        """The first hook of ``hook_type`` (None if absent)."""
        return next((h for h in self.hooks if isinstance(h, hook_type)), None)

    def log_scalars(self, scalars: Dict[str, object], step: int) -> None:
        """Send scalars to every vis backend (rank 0)."""
        for backend in self.vis_backends:
            backend.add_scalars(scalars, step)

    # ------------------------------------------------------------------ components
    def _loader(self, split: str):
        if split not in self._loaders:
            if self._loader_cfgs[split] is None:
                raise KeyError(f'{split}() needs {split}_dataloader in the config')
            self._loaders[split] = _build_loader(self._loader_cfgs[split], self.seed)
        return self._loaders[split]

    @property
    def train_loader(self):
        """The training loader (built on first use)."""
        return self._loader('train')

    @property
    def test_metrics(self) -> list:
        """The metrics of the last :meth:`test` (e.g. ``DumpResults``, whose records ``tools/test.py --out`` writes)."""
        return self._metrics.get('test', [])

    @property
    def can_validate(self) -> bool:
        """Whether training validates (``val_cfg``, ``val_dataloader`` and ``val_evaluator`` are all set)."""
        return self.val_cfg is not None and self._loader_cfgs['val'] is not None and bool(self.evaluator_cfgs['val'])

    def _evaluator(self, split: str) -> list:
        if split not in self._metrics:
            cfg = self.evaluator_cfgs[split]
            if not cfg:
                raise KeyError(f'{split}() needs {split}_evaluator in the config')
            items = cfg if isinstance(cfg, list) else [cfg]
            for item in items:
                if not isinstance(item, dict):
                    raise TypeError(f'{split}_evaluator must be a dict or a list of dicts, got {item!r}')
            self._metrics[split] = [METRICS.build(item) for item in items]
        return self._metrics[split]

    def eval_step(self) -> Callable[[np.ndarray], np.ndarray]:
        """The compiled evaluation forward ``uint8 batch -> float logits`` (compiled once per input shape)."""
        if self._eval_step is None:
            self._eval_step = make_eval_step(self.model)
        step = self._eval_step
        return lambda inputs: step(Tensor(inputs)).asnumpy()

    def _parse_train_cfg(self) -> dict:
        cfg = self.train_cfg
        unknown = sorted(set(cfg) - set(TRAIN_CFG_KEYS))
        if unknown:
            raise KeyError(f'train_cfg: unknown keys {unknown} (supported: {sorted(TRAIN_CFG_KEYS)})')
        by_epoch = cfg.get('by_epoch')
        if 'type' in cfg:
            if cfg['type'] not in LOOP_TYPES:
                raise ValueError(f'train_cfg.type must be one of {sorted(LOOP_TYPES)}, got {cfg["type"]!r}')
            if by_epoch is not None and by_epoch != LOOP_TYPES[cfg['type']]:
                raise ValueError(f'train_cfg: type={cfg["type"]!r} contradicts by_epoch={by_epoch!r}')
            by_epoch = LOOP_TYPES[cfg['type']]
        by_epoch = True if by_epoch is None else by_epoch
        if by_epoch:
            if 'max_iters' in cfg:
                raise KeyError('train_cfg: max_iters belongs to iteration-based training (by_epoch=False)')
            return dict(by_epoch=True, max_epochs=_positive_int(cfg, 'max_epochs', 'train_cfg'), max_iters=None,
                        val_interval=_positive_int(cfg, 'val_interval', 'train_cfg', 1),
                        val_begin=_positive_int(cfg, 'val_begin', 'train_cfg', 1))
        if 'max_epochs' in cfg:
            raise KeyError('train_cfg: max_epochs belongs to epoch-based training (by_epoch=True)')
        return dict(by_epoch=False, max_epochs=None, max_iters=_positive_int(cfg, 'max_iters', 'train_cfg'),
                    val_interval=_positive_int(cfg, 'val_interval', 'train_cfg', 1000),
                    val_begin=_positive_int(cfg, 'val_begin', 'train_cfg', 1))

    def _build_training(self, loop_args: dict) -> TrainLoop:
        loader = self.train_loader
        if len(loader) == 0:
            raise ValueError('train_dataloader yields no batch (dataset smaller than batch_size with drop_last?)')
        metainfo = getattr(getattr(loader, 'dataset', None), 'metainfo', None) or {}
        if metainfo.get('classes'):
            self.dataset_meta = {'classes': [str(c) for c in metainfo['classes']]}
        counts = (self.optim_wrapper_cfg or {}).get('accumulative_counts', 1)
        batch = getattr(loader, 'batch_size', None)
        real_batch = batch * self.world_size * counts if isinstance(batch, int) and isinstance(counts, int) else None
        self.optim_wrapper = build_optim_wrapper(self.optim_wrapper_cfg, self.model, auto_scale_lr=self.auto_scale_lr,
                                                 real_batch_size=real_batch, logger=self.logger)
        grad_reducer = None
        if self.world_size > 1:
            grad_reducer = nn.DistributedGradReducer(self.optim_wrapper.optimizer.parameters, mean=True,
                                                     degree=self.world_size)
        self.train_step = TrainStep(self.model, self.optim_wrapper, grad_reducer)
        self.step_masks = StepMasks.for_model(self.model, self.seed)
        loop = TrainLoop(self, loader, **loop_args)
        self.lr_schedule = LRSchedule(self.optim_wrapper.base_lr, self.param_scheduler_cfg, loop.updates_per_epoch)
        self.lr = self.optim_wrapper.base_lr
        self.by_epoch, self.max_epochs, self.max_iters = loop.by_epoch, loop.max_epochs, loop.max_iters
        return loop

    # ------------------------------------------------------------------ checkpoints
    def _resume_path(self) -> Optional[str]:
        if isinstance(self.resume_from, str) and self.resume_from not in ('auto', ''):
            return self.resume_from
        if self.load_from and self.resume_from:
            return self.load_from
        return find_resume_checkpoint(self.checkpoint_folder, self.logger)

    def resume(self, path: str) -> None:
        """Restore everything a training checkpoint holds so training continues exactly."""
        state, meta = restore_training_checkpoint(self, path)
        saved_seed = int(meta['seed'])
        if saved_seed != self.seed:
            self.logger.warning(f'resume: using the checkpoint seed {saved_seed} instead of {self.seed}')
            self.seed = saved_seed
            self.step_masks.seed = saved_seed
            self.train_loader.seed = saved_seed
        self.epoch = int(meta['epoch'])
        self.iter = int(meta['iter'])
        self.batch_in_epoch = int(meta.get('batch_in_epoch', 0))
        self.amp_consecutive_skips = int(meta.get('amp_consecutive_skips', 0))
        self.call_hook('after_load_checkpoint', state, meta, True)
        self.logger.info(f'Resumed from {path}: epoch {self.epoch}, iter {self.iter}')

    def load_weights(self, path: str, finetune: bool = False) -> Dict[str, str]:
        """Load the model weights of ``path``.  Strict, except that fine-tuning (``finetune=True``, what
        ``load_from`` does before training) leaves a head of another shape at its initial values."""
        meta = load_weights(self.model, path, finetune=finetune, log=self.logger)
        self.logger.info(f'Loaded weights from {path}')
        self._weights_loaded = True
        return meta

    # ------------------------------------------------------------------ entry points
    def train(self) -> nn.Cell:
        """Train for ``train_cfg.max_epochs`` epochs (or ``max_iters`` iterations), validating when due; returns the
        model."""
        loop = self._build_training(self._parse_train_cfg())
        resume_path = self._resume_path() if self.resume_from else None
        if resume_path:
            self.resume(resume_path)
        elif self.load_from:
            meta = self.load_weights(self.load_from, finetune=True)
            from effnet_mm.utils import load_checkpoint
            self.call_hook('after_load_checkpoint', load_checkpoint(self.load_from)[0], meta, False)
        self.call_hook('before_run')
        unit = f'{loop.max_epochs} epochs x {loop.epoch_length} iters' if loop.by_epoch else \
            f'{loop.max_iters} iters ({loop.epoch_length} per data epoch)'
        counts = self.optim_wrapper.accumulative_counts
        self.logger.info(f'Training {unit}, world size {self.world_size}, seed {self.seed}'
                         + (f', {counts} micro-batches per update' if counts > 1 else '')
                         + f', work_dir {self.work_dir}')
        self.model.set_train(True)
        loop.run()
        self.call_hook('after_run')
        return self.model

    def val(self) -> Dict[str, float]:
        """Evaluate on ``val_dataloader`` with ``val_evaluator`` (EMA weights when the EMAHook is on)."""
        if self.load_from and not self._weights_loaded and self.train_step is None:
            self.load_weights(self.load_from)
        return EvalLoop(self, self._loader('val'), self._evaluator('val'), 'val').run()

    def test(self) -> Dict[str, float]:
        """Evaluate ``load_from`` (if set) on ``test_dataloader`` with ``test_evaluator``; the checkpoint must fit
        the model exactly (a head of another shape is an error naming the tensors)."""
        if self.load_from and not self._weights_loaded:
            self.load_weights(self.load_from)
        return EvalLoop(self, self._loader('test'), self._evaluator('test'), 'test').run()
