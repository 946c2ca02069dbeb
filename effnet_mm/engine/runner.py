"""Epoch-based training/validation/test runner on MindSpore, shaped like mmengine's ``Runner``.

Same config keys (``model``, ``*_dataloader``, ``train_cfg``, ``optim_wrapper``, ``param_scheduler``,
``val_evaluator``, ``default_hooks``, ``custom_hooks``, ``auto_scale_lr``, ``load_from``, ``resume``,
``randomness``, ``launcher``, ``work_dir``) and work-dir layout (``<work_dir>/<timestamp>/<timestamp>.log``,
``vis_data/scalars.json``, checkpoints and ``last_checkpoint`` in ``<work_dir>``).
"""
from __future__ import annotations

import copy
import os
import random
import time
from typing import Dict, List, Optional, Union

import mindspore as ms
import numpy as np
from mindspore import Tensor, nn
from mmengine.config import Config, ConfigDict
from mmengine.logging import MMLogger
from mmengine.utils import ProgressBar

from effnet_mm.registry import HOOKS, METRICS, MODELS, RUNNERS, VISBACKENDS
from effnet_mm.utils import load_checkpoint, save_checkpoint

from . import dist
from .amp import AMP_LEVELS, apply_amp
from .hooks import PRIORITIES, Hook
from .optimizers import build_optimizer
from .param_io import write_params
from .schedulers import LRSchedule
from .train_step import LossCell, build_loss_scaler, make_eval_step, make_train_step
from .weights import assign_params

#: Written into every training checkpoint; a resume refuses other files.
CHECKPOINT_FORMAT = 'effnet_mm-train-v1'
#: Hooks every run has unless ``default_hooks`` sets them to None (mmengine's defaults).
DEFAULT_HOOKS = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=10),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', interval=1),
    sampler_seed=dict(type='DistSamplerSeedHook'),
)
_OPTIM_WRAPPER_KEYS = {'type', 'optimizer', 'paramwise_cfg', 'clip_grad', 'loss_scale', 'level', 'dtype',
                       'accumulative_counts'}


def _to_dict(cfg: object) -> object:
    return cfg.to_dict() if isinstance(cfg, ConfigDict) else copy.deepcopy(cfg)


def _epoch_seed(seed: int, epoch: int) -> int:
    # Distinct, reproducible seed for the random kernels (dropout, drop path) of each epoch.
    return (seed * 1000003 + epoch * 7919 + 1) % (2**31 - 1)


def _build_loader(cfg: object, seed: int, name: str):
    if not isinstance(cfg, dict):
        return cfg  # an already built loader object following the Loaders contract
    try:
        from effnet_mm.datasets import build_dataloader
    except ImportError as err:
        raise ImportError(f'{name}: building loaders needs effnet_mm.datasets.build_dataloader ({err})') from err
    return build_dataloader(cfg, seed=seed, shard_id=dist.get_rank(), num_shards=dist.get_world_size())


@RUNNERS.register_module()
class Runner:
    """Builds everything from a config and runs ``train()``, ``val()`` or ``test()``.

    Example config (the keys a training config defines; see ``configs/_base_``)::

        model = dict(type='ImageClassifier', ...)
        train_dataloader = dict(batch_size=32, num_workers=2, sampler=dict(type='DefaultSampler', shuffle=True),
                                dataset=dict(type='DemoDataset', ...))
        val_dataloader = dict(...); val_evaluator = dict(type='Accuracy', topk=(1, 5))
        train_cfg = dict(by_epoch=True, max_epochs=10, val_interval=1)
        optim_wrapper = dict(optimizer=dict(type='RMSProp', lr=0.016, alpha=0.9, momentum=0.9, eps=1e-3,
                                            weight_decay=1e-5),
                             paramwise_cfg=dict(norm_decay_mult=0.0, bias_decay_mult=0.0),
                             clip_grad=dict(max_norm=10.0))
        param_scheduler = [dict(type='LinearLR', start_factor=0.01, end=1, convert_to_iter_based=True),
                           dict(type='CosineAnnealingLR', T_max=9, begin=1, end=10)]
        auto_scale_lr = dict(base_batch_size=256, enable=False)
        custom_hooks = [dict(type='EMAHook', momentum=1e-4)]
        randomness = dict(seed=0)

    Dataloaders may also be given as built loader objects (anything following the Loaders contract of
    docs/design.md).
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
        dist.select_device((env_cfg or {}).get('device_target'))
        dist.init_dist(launcher)
        self.rank = dist.get_rank()
        self.world_size = dist.get_world_size()
        self.work_dir = os.path.abspath(work_dir)
        self.cfg = cfg
        self.timestamp = experiment_name or time.strftime('%Y%m%d_%H%M%S', time.localtime())
        self.log_dir = os.path.join(self.work_dir, self.timestamp)
        self._setup_logging(log_level, vis_backends)
        self._apply_env(env_cfg or {})

        self.seed = self._resolve_seed((randomness or {}).get('seed'))
        self._seed_everything(self.seed)
        if self.world_size > 1:
            ms.set_auto_parallel_context(parallel_mode=ms.ParallelMode.DATA_PARALLEL, gradients_mean=True)

        model = _to_dict(model)
        if isinstance(model, dict) and data_preprocessor is not None and model.get('data_preprocessor') is None:
            # mmengine behaviour: a top-level data_preprocessor configures the model's.
            model['data_preprocessor'] = _to_dict(data_preprocessor)
        self.model: nn.Cell = MODELS.build(model) if isinstance(model, dict) else model

        self._train_loader_cfg = _to_dict(train_dataloader)
        self._val_loader_cfg = _to_dict(val_dataloader)
        self._test_loader_cfg = _to_dict(test_dataloader)
        self.train_loader = None
        self._val_loader = None
        self._test_loader = None
        self.train_cfg = dict(_to_dict(train_cfg) or {})
        self.val_cfg = val_cfg
        self.test_cfg = test_cfg
        self.optim_wrapper_cfg = _to_dict(optim_wrapper)
        scheduler_cfg = _to_dict(param_scheduler) or []
        self.param_scheduler_cfg = [scheduler_cfg] if isinstance(scheduler_cfg, dict) else list(scheduler_cfg)
        self.val_evaluator_cfg = _to_dict(val_evaluator)
        self.test_evaluator_cfg = _to_dict(test_evaluator)
        self.auto_scale_lr = _to_dict(auto_scale_lr) or {}
        self.load_from = load_from
        self.resume_from = resume
        self.hooks: List[Hook] = self._build_hooks(_to_dict(default_hooks) or {}, _to_dict(custom_hooks) or [])

        self.epoch = 0
        self.iter = 0
        self.max_epochs = 0
        self.max_iters = 0
        self.message: Dict[str, float] = {}
        self.checkpoint_meta: Dict[str, str] = {}
        self.loaded_meta: Dict[str, str] = {}
        self.eval_mode = 'val'
        self.eval_batches = 0
        self.optimizer: Optional[nn.Optimizer] = None
        self.loss_scaler = None
        self.lr_schedule: Optional[LRSchedule] = None
        self._eval_step = None
        self._weights_loaded = False
        self.test_metrics: list = []

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_cfg(cls, cfg: Config) -> Runner:
        """Build a runner from a full config (``work_dir`` defaults to ``./work_dirs/<config stem>``)."""
        cfg = copy.deepcopy(cfg)
        work_dir = cfg.get('work_dir')
        if not work_dir:
            stem = os.path.splitext(os.path.basename(cfg.filename or 'config'))[0]
            work_dir = os.path.join('./work_dirs', stem)
            cfg.work_dir = work_dir
        if 'model' not in cfg:
            raise KeyError(f'{cfg.filename}: the config has no "model"')
        vis_backends = cfg.get('vis_backends')
        if vis_backends is None and isinstance(cfg.get('visualizer'), dict):
            vis_backends = cfg.visualizer.get('vis_backends')
        return cls(
            model=cfg.model,
            work_dir=work_dir,
            train_dataloader=cfg.get('train_dataloader'),
            val_dataloader=cfg.get('val_dataloader'),
            test_dataloader=cfg.get('test_dataloader'),
            train_cfg=cfg.get('train_cfg'),
            val_cfg=cfg.get('val_cfg'),
            test_cfg=cfg.get('test_cfg'),
            optim_wrapper=cfg.get('optim_wrapper'),
            param_scheduler=cfg.get('param_scheduler'),
            val_evaluator=cfg.get('val_evaluator'),
            test_evaluator=cfg.get('test_evaluator'),
            auto_scale_lr=cfg.get('auto_scale_lr'),
            default_hooks=cfg.get('default_hooks'),
            custom_hooks=cfg.get('custom_hooks'),
            data_preprocessor=cfg.get('data_preprocessor'),
            load_from=cfg.get('load_from'),
            resume=cfg.get('resume', False),
            randomness=cfg.get('randomness'),
            launcher=cfg.get('launcher', 'none'),
            env_cfg=cfg.get('env_cfg'),
            log_level=cfg.get('log_level', 'INFO'),
            vis_backends=vis_backends,
            experiment_name=cfg.get('experiment_name'),
            cfg=cfg)

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
            for backend in _to_dict(vis_backends) or [dict(type='LocalVisBackend')]:
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
        if not isinstance(seed, int) or seed < 0:
            raise ValueError(f'randomness.seed must be a non-negative int, got {seed!r}')
        return seed

    @staticmethod
    def _seed_everything(seed: int) -> None:
        ms.set_seed(seed)
        np.random.seed(seed % (2**32))
        random.seed(seed)

    def _build_hooks(self, default_hooks: dict, custom_hooks: List[dict]) -> List[Hook]:
        merged = dict(DEFAULT_HOOKS)
        merged.update(default_hooks)
        hooks = []
        for name, hook_cfg in list(merged.items()) + [(f'custom_hooks[{i}]', c) for i, c in enumerate(custom_hooks)]:
            if hook_cfg is None:
                continue
            if isinstance(hook_cfg, Hook):
                hooks.append(hook_cfg)
                continue
            hook_cfg = dict(hook_cfg)
            priority = hook_cfg.pop('priority', None)
            try:
                hook = HOOKS.build(hook_cfg)
            except KeyError as err:
                raise KeyError(f'{name}: unknown hook type {hook_cfg.get("type")!r} ({err})') from err
            if priority is not None:
                hook.priority = priority
            hooks.append(hook)
        return sorted(hooks, key=lambda h: PRIORITIES.get(h.priority, h.priority) if isinstance(h.priority, str)
                      else h.priority)

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

    # ------------------------------------------------------------------ optimisation
    def _train_batch_size(self) -> int:
        size = getattr(self.train_loader, 'batch_size', None)
        if size is None and isinstance(self._train_loader_cfg, dict):
            size = self._train_loader_cfg.get('batch_size')
        if not size:
            raise ValueError('train_dataloader: cannot determine batch_size (needed by auto_scale_lr)')
        return int(size)

    def _build_optim(self) -> None:
        cfg = self.optim_wrapper_cfg
        if not isinstance(cfg, dict) or 'optimizer' not in cfg:
            raise KeyError(f'optim_wrapper must be a dict with an "optimizer" entry, got {cfg!r}')
        unknown = set(cfg) - _OPTIM_WRAPPER_KEYS
        if unknown:
            raise KeyError(f'optim_wrapper: unsupported keys {sorted(unknown)} '
                           f'(supported: {sorted(_OPTIM_WRAPPER_KEYS)})')
        wrapper_type = cfg.get('type', 'OptimWrapper')
        if wrapper_type not in ('OptimWrapper', 'AmpOptimWrapper'):
            raise ValueError(f'optim_wrapper.type must be "OptimWrapper" or "AmpOptimWrapper", got {wrapper_type!r}')
        if int(cfg.get('accumulative_counts', 1)) != 1:
            raise ValueError('optim_wrapper.accumulative_counts != 1 (gradient accumulation) is not supported')
        self.optimizer = build_optimizer(cfg['optimizer'], self.model.trainable_params(), cfg.get('paramwise_cfg'))

        base_lr = float(cfg['optimizer']['lr'])
        if self.auto_scale_lr.get('enable', False):
            base_batch = self.auto_scale_lr.get('base_batch_size')
            if not base_batch or base_batch <= 0:
                raise ValueError(f'auto_scale_lr.base_batch_size must be positive, got {base_batch!r}')
            real = self._train_batch_size() * self.world_size
            self.logger.info(f'auto_scale_lr: lr {base_lr} x {real}/{base_batch} = {base_lr * real / base_batch}')
            base_lr = base_lr * real / base_batch
        self.lr_schedule = LRSchedule(base_lr, self.param_scheduler_cfg, len(self.train_loader))

        clip = cfg.get('clip_grad')
        self.max_norm = None
        if clip:
            if float(clip.get('norm_type', 2)) != 2:
                raise ValueError(f'optim_wrapper.clip_grad.norm_type must be 2, got {clip.get("norm_type")}')
            if 'max_norm' not in clip or clip['max_norm'] <= 0:
                raise ValueError(f'optim_wrapper.clip_grad.max_norm must be positive, got {clip.get("max_norm")!r}')
            self.max_norm = float(clip['max_norm'])

        self.loss_cell: nn.Cell = LossCell(self.model)
        if wrapper_type == 'AmpOptimWrapper':
            level = cfg.get('level', 'O2')
            if level not in AMP_LEVELS:
                raise ValueError(f'optim_wrapper.level must be one of {AMP_LEVELS}, got {level!r}')
            if cfg.get('dtype', 'float16') != 'float16':
                raise ValueError(f'optim_wrapper.dtype must be "float16" (bfloat16 convs are unsupported on CPU), '
                                 f'got {cfg.get("dtype")!r}')
            self.loss_cell = apply_amp(self.loss_cell, level)
            self.loss_scaler = build_loss_scaler(cfg.get('loss_scale', 'dynamic'))
            self.logger.info(f'AMP {level} float16 with loss scale {cfg.get("loss_scale", "dynamic")}')
        self.grad_reducer = None
        if self.world_size > 1:
            self.grad_reducer = nn.DistributedGradReducer(self.optimizer.parameters, mean=True,
                                                          degree=self.world_size)

    def set_lr(self, lr: float) -> None:
        """Learning rate of the coming update(s) (passed to the compiled step, which assigns it)."""
        self.message['lr'] = float(lr)

    # ------------------------------------------------------------------ checkpoints
    def _optimizer_state_params(self) -> list:
        model_names = {p.name for p in self.model.get_parameters()}
        return [p for p in self.optimizer.get_parameters() if p.name not in model_names]

    def save_training_checkpoint(self, path: str) -> None:
        """Write model, optimizer, EMA, loss-scale and progress to ``path`` (rank 0; atomic)."""
        state: Dict[str, np.ndarray] = {p.name: p.asnumpy() for p in self.model.get_parameters()}
        for param in self._optimizer_state_params():
            state[param.name] = param.asnumpy()
        if self.loss_scaler is not None and hasattr(self.loss_scaler, 'scale_value'):
            state['loss_scaler.scale_value'] = self.loss_scaler.scale_value.asnumpy()
            if hasattr(self.loss_scaler, 'counter'):
                state['loss_scaler.counter'] = self.loss_scaler.counter.asnumpy()
        self.checkpoint_meta = dict(format=CHECKPOINT_FORMAT, epoch=str(self.epoch), iter=str(self.iter),
                                    seed=str(self.seed), lr=repr(self.message.get('lr', '')),
                                    world_size=str(self.world_size), timestamp=self.timestamp,
                                    config=os.path.basename(self.cfg.filename) if self.cfg and self.cfg.filename
                                    else '')
        self.call_hook('before_save_checkpoint', state)
        if self.rank == 0:
            save_checkpoint(state, path, self.checkpoint_meta)
            self.logger.info(f'Saved checkpoint {path}')

    def load_model_state(self, state: Dict[str, object], source: str = 'checkpoint') -> None:
        """Copy every model parameter from ``state`` (all must be present with equal shapes)."""
        assign_params(self.model.get_parameters(), state, source)

    def _find_resume_path(self) -> Optional[str]:
        if isinstance(self.resume_from, str) and self.resume_from not in ('auto', ''):
            return self.resume_from
        if self.load_from and self.resume_from:
            return self.load_from
        pointer = os.path.join(self.work_dir, 'last_checkpoint')
        if not os.path.exists(pointer):
            self.logger.warning(f'resume: no {pointer}; training from scratch')
            return None
        with open(pointer, encoding='utf-8') as f:
            return f.read().strip()

    def resume(self, path: str) -> None:
        """Restore everything a training checkpoint holds so training continues exactly."""
        params, meta = load_checkpoint(path)
        if meta.get('format') != CHECKPOINT_FORMAT:
            raise ValueError(f'{path} is not an effnet_mm training checkpoint (meta format={meta.get("format")!r}); '
                             f'use load_from=... for weights-only files')
        self.loaded_meta = meta
        self.load_model_state(params, path)
        try:
            assign_params(self._optimizer_state_params(), params, f'{path} (optimizer state)')
        except KeyError as err:
            raise KeyError(f'{err.args[0]}\n  (was the checkpoint written with another optimizer?)') from err
        if self.loss_scaler is not None and 'loss_scaler.scale_value' in params:
            scaler_params = [self.loss_scaler.scale_value]
            if 'loss_scaler.counter' in params and hasattr(self.loss_scaler, 'counter'):
                scaler_params.append(self.loss_scaler.counter)
            names = ['loss_scaler.scale_value', 'loss_scaler.counter'][:len(scaler_params)]
            write_params(scaler_params, [params[n].asnumpy() for n in names])
        saved_seed = int(meta['seed'])
        if saved_seed != self.seed:
            self.logger.warning(f'resume: using the checkpoint seed {saved_seed} instead of {self.seed}')
            self.seed = saved_seed
        self.epoch = int(meta['epoch'])
        self.iter = int(meta['iter'])
        self.call_hook('after_load_checkpoint', params, True)
        self.logger.info(f'Resumed from {path}: epoch {self.epoch}, iter {self.iter}')

    def load_weights(self, path: str) -> None:
        """``load_from``: evaluation weights of ``path``; a head with another shape is skipped with a warning."""
        params, meta = load_checkpoint(path)
        self.loaded_meta = meta
        assign_params(self.model.get_parameters(), params, path, skip_mismatched_prefix='head.', logger=self.logger)
        self.logger.info(f'Loaded weights from {path}')
        self._weights_loaded = True

    # ------------------------------------------------------------------ loops
    def train(self) -> nn.Cell:
        """Train for ``train_cfg.max_epochs`` epochs (validating every ``val_interval``); returns the model."""
        by_epoch = self.train_cfg.get('by_epoch', True)
        if not by_epoch:
            raise ValueError('train_cfg.by_epoch=False is not supported: the runner is epoch-based')
        self.max_epochs = int(self.train_cfg.get('max_epochs', 0))
        if self.max_epochs < 1:
            raise ValueError(f'train_cfg.max_epochs must be >= 1, got {self.train_cfg.get("max_epochs")!r}')
        val_interval = int(self.train_cfg.get('val_interval', 1))
        val_begin = int(self.train_cfg.get('val_begin', 1))
        if self._train_loader_cfg is None:
            raise KeyError('train() needs train_dataloader in the config')
        self.train_loader = _build_loader(self._train_loader_cfg, self.seed, 'train_dataloader')
        if len(self.train_loader) == 0:
            raise ValueError('train_dataloader yields no batch (dataset smaller than batch_size with drop_last?)')
        validate = self.val_cfg is not None and self._val_loader_cfg is not None and self.val_evaluator_cfg
        self._build_optim()
        self.max_iters = self.max_epochs * len(self.train_loader)
        self.call_hook('before_run')
        resume_path = self._find_resume_path() if self.resume_from else None
        if resume_path:
            self.resume(resume_path)
        elif self.load_from:
            self.load_weights(self.load_from)
            self.call_hook('after_load_checkpoint', {}, False)
        self.logger.info(f'Training {self.max_epochs} epochs x {len(self.train_loader)} iters, '
                         f'world size {self.world_size}, seed {self.seed}, work_dir {self.work_dir}')
        self.model.set_train(True)
        while self.epoch < self.max_epochs:
            self._train_epoch()
            if validate and self.epoch >= val_begin and (self.epoch % val_interval == 0
                                                         or self.epoch == self.max_epochs):
                self.val()
            self.call_hook('after_epoch')
        self.call_hook('after_run')
        return self.model

    def _train_epoch(self) -> None:
        self.call_hook('before_train_epoch')
        # A fresh graph per epoch, compiled after seeding: the random kernels' streams then depend only on
        # (seed, epoch), so a run resumed at an epoch boundary draws the same dropout/drop-path masks.
        ms.set_seed(_epoch_seed(self.seed, self.epoch))
        step = make_train_step(self.loss_cell, self.optimizer, self.max_norm, self.loss_scaler, self.grad_reducer)
        self.model.set_train(True)
        for batch_idx, batch in enumerate(self.train_loader):
            self.call_hook('before_train_iter', batch_idx)
            inputs = Tensor(batch['inputs'])
            labels = Tensor(np.asarray(batch['gt_label'], np.int32))
            if 'lr' not in self.message:
                raise RuntimeError('no learning rate was set: default_hooks.param_scheduler must not be None')
            loss, finite = step(inputs, labels, Tensor(self.message['lr'], ms.float32))
            outputs = {'loss': float(loss.asnumpy())}
            if self.loss_scaler is not None:
                outputs['loss_scale'] = float(self.loss_scaler.scale_value.asnumpy())
                if not bool(finite.asnumpy()):
                    outputs['overflow'] = 1.0
                    self.logger.warning(f'iter {self.iter + 1}: gradient overflow, update skipped '
                                        f'(loss scale now {outputs["loss_scale"]:g})')
            self.iter += 1
            self.call_hook('after_train_iter', batch_idx, outputs)
        self.epoch += 1
        self.call_hook('after_train_epoch')

    def _evaluator(self, cfg: object, key: str) -> list:
        cfgs = cfg if isinstance(cfg, list) else [cfg]
        metrics = []
        for item in cfgs:
            if not isinstance(item, dict):
                raise TypeError(f'{key} must be a dict or a list of dicts, got {item!r}')
            try:
                metrics.append(METRICS.build(item))
            except KeyError as err:
                raise KeyError(f'{key}: unknown metric type {item.get("type")!r} ({err})') from err
        return metrics

    def _evaluate(self, loader, metrics: list, mode: str) -> Dict[str, float]:
        self.eval_mode = mode
        self.eval_batches = len(loader)
        self.call_hook('before_val_epoch')
        self.model.set_train(False)
        if self._eval_step is None:
            self._eval_step = make_eval_step(self.model)
        dataset = getattr(loader, 'dataset', None)
        for metric in metrics:
            if hasattr(metric, 'dataset'):
                # mmengine hands metrics the dataset's metainfo (evaluator.dataset_meta); ours also read its samples.
                metric.dataset = dataset
            metric.reset()
        progress = ProgressBar(len(loader)) if self.rank == 0 and len(loader) else None
        batch_size = None
        for batch in loader:
            inputs = np.asarray(batch['inputs'])
            count = inputs.shape[0]
            batch_size = batch_size or count
            if count < batch_size:
                # Pad the last batch to the compiled shape instead of compiling a second graph.
                pad = np.repeat(inputs[-1:], batch_size - count, axis=0)
                inputs = np.concatenate([inputs, pad])
            logits = self._eval_step(Tensor(inputs)).asnumpy()[:count].astype(np.float32)
            for metric in metrics:
                metric.process(logits, batch['gt_label'], batch.get('sample_idx'))
            if progress is not None:
                progress.update()
        if progress is not None:
            print(flush=True)
        results: Dict[str, float] = {}
        for metric in metrics:
            results.update(metric.from_summary(dist.all_reduce_sum(metric.summary())))
        self.model.set_train(True)
        self.call_hook('after_val_epoch', results)
        return results

    def val(self) -> Dict[str, float]:
        """Evaluate on ``val_dataloader`` with ``val_evaluator`` (EMA weights when the EMAHook is on)."""
        if self._val_loader_cfg is None or not self.val_evaluator_cfg:
            raise KeyError('val() needs val_dataloader and val_evaluator in the config')
        if self._val_loader is None:
            self._val_loader = _build_loader(self._val_loader_cfg, self.seed, 'val_dataloader')
            self._val_metrics = self._evaluator(self.val_evaluator_cfg, 'val_evaluator')
        return self._evaluate(self._val_loader, self._val_metrics, 'val')

    def test(self) -> Dict[str, float]:
        """Evaluate ``load_from`` (if set) on ``test_dataloader`` with ``test_evaluator``."""
        if self._test_loader_cfg is None or not self.test_evaluator_cfg:
            raise KeyError('test() needs test_dataloader and test_evaluator in the config')
        if self.load_from and not self._weights_loaded:
            self.load_weights(self.load_from)
        if self._test_loader is None:
            self._test_loader = _build_loader(self._test_loader_cfg, self.seed, 'test_dataloader')
        # Kept on the runner so callers can read what a metric gathered (tools/test.py --out reads DumpResults).
        self.test_metrics = self._evaluator(self.test_evaluator_cfg, 'test_evaluator')
        return self._evaluate(self._test_loader, self.test_metrics, 'test')
