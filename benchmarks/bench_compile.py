"""Graph compile time of the runner's training step, each run in a fresh process.

    GLOG_v=3 python benchmarks/bench_compile.py --img-size 64 224 --optim config sgd --runs 2

Builds the model and optimizer of a config (default: the demo config, AdamW + gradient clipping) like the runner
does, then calls :class:`effnet_mm.engine.train_step.TrainStep` as the runner calls it (host arrays, host-drawn
drop-path and dropout masks).  ``compile`` is the first call minus the median steady call; the steady call is
reported too, so a compile gain that slows the step shows.  ``--optim sgd`` replaces the config's optimizer by SGD
(momentum 0.9, no clipping).  Every (size, optimizer, run) is a new interpreter, so nothing compiled or cached in
memory by an earlier measurement helps a later one.  Extra ``--env KEY=VALUE`` pairs go into the workers'
environment (e.g. MindSpore ``MS_DEV_*`` switches to compare).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from typing import List, Optional

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_CONFIG = os.path.join(ROOT, 'configs', 'efficientnet', 'efficientnet-b0_1xb32_demo.py')
#: ``--optim sgd``: SGD with momentum, no clipping.
SGD = dict(optimizer=dict(type='SGD', lr=0.05, momentum=0.9, weight_decay=1e-5),
           paramwise_cfg=dict(norm_decay_mult=0.0))


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--config', default=DEFAULT_CONFIG, help='model and optim_wrapper')
    parser.add_argument('--img-size', type=int, nargs='+', default=[64, 224])
    parser.add_argument('--batch-size', type=int, default=32)
    parser.add_argument('--optim', nargs='+', choices=('config', 'sgd'), default=['config', 'sgd'])
    parser.add_argument('--runs', type=int, default=2, help='fresh processes per (size, optimizer)')
    parser.add_argument('--steps', type=int, default=3, help='steady calls after the first (the median is used)')
    parser.add_argument('--env', nargs='*', default=[], metavar='KEY=VALUE', help='extra environment of the workers')
    parser.add_argument('--worker', default=None, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def worker(args: argparse.Namespace) -> None:
    """One measurement in this process; prints one JSON line."""
    size, optim = args.worker.split(',')
    import mindspore as ms
    import numpy as np
    from mmengine.config import Config

    from effnet_mm.engine.optim_wrapper import build_optim_wrapper
    from effnet_mm.engine.randomness import StepMasks
    from effnet_mm.engine.train_step import TrainStep
    from effnet_mm.registry import MODELS

    cfg = Config.fromfile(args.config)
    model_cfg = cfg.model.to_dict()
    if 'data_preprocessor' in cfg and 'data_preprocessor' not in model_cfg:
        model_cfg['data_preprocessor'] = dict(cfg.data_preprocessor)
    ms.set_seed(0)
    model = MODELS.build(model_cfg)
    wrapper = build_optim_wrapper(cfg.optim_wrapper.to_dict() if optim == 'config' else SGD, model)
    step = TrainStep(model, wrapper)
    masks = StepMasks.for_model(model, seed=0)
    model.set_train(True)
    batch, num_classes = args.batch_size, model_cfg['head']['num_classes']
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (batch, 3, int(size), int(size)), dtype=np.uint8)
    labels = rng.integers(0, num_classes, batch).astype(np.int32)
    times = []
    for i in range(args.steps + 1):
        drop_masks, dropout_mask = masks.draw(0, np.arange(batch) + i * batch)
        start = time.perf_counter()
        step(images, labels, wrapper.base_lr, drop_masks, dropout_mask)
        times.append(time.perf_counter() - start)
    steady = statistics.median(times[1:])
    print(json.dumps(dict(first=times[0], steady=steady, compile=times[0] - steady)))


def main(argv: Optional[List[str]] = None) -> None:
    args = parse_args(argv)
    if args.worker:
        worker(args)
        return
    env = dict(os.environ, GLOG_v=os.environ.get('GLOG_v', '3'))
    env['PYTHONPATH'] = os.pathsep.join(p for p in (ROOT, env.get('PYTHONPATH')) if p)
    for pair in args.env:
        key, sep, value = pair.partition('=')
        if not sep or not key:
            raise SystemExit(f'--env: expected KEY=VALUE, got {pair!r}')
        env[key] = value
    cpu = next((line.split(':', 1)[1].strip() for line in open('/proc/cpuinfo', encoding='utf-8')
                if line.startswith('model name')), 'unknown CPU') if os.path.exists('/proc/cpuinfo') else 'unknown CPU'
    print(f'{os.path.relpath(args.config, ROOT)}, batch {args.batch_size}, {os.cpu_count()} CPUs ({cpu}), '
          f'{args.runs} fresh processes each; env {" ".join(args.env) or "-"}')
    print(f'{"img px":>6} {"optimizer":<10} {"compile s (each run)":<28} {"steady step s (each run)":<28}')
    for size in args.img_size:
        for optim in args.optim:
            results = []
            for _ in range(args.runs):
                cmd = [sys.executable, os.path.abspath(__file__), '--config', args.config, '--batch-size',
                       str(args.batch_size), '--steps', str(args.steps), '--worker', f'{size},{optim}']
                proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
                lines = [line for line in proc.stdout.splitlines() if line.startswith('{')]
                if proc.returncode != 0 or not lines:
                    raise SystemExit(f'worker {size}px {optim} failed ({proc.returncode}):\n{proc.stderr[-3000:]}')
                results.append(json.loads(lines[-1]))
            compiles = ' '.join(f'{r["compile"]:.1f}' for r in results)
            steadies = ' '.join(f'{r["steady"]:.3f}' for r in results)
            print(f'{size:>6} {optim:<10} {compiles:<28} {steadies:<28}', flush=True)


if __name__ == '__main__':
    main()
