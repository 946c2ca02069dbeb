"""Images/s of an effnet_mm EfficientNet (inference and training), optionally side by side with timm on PyTorch.

Graph compilation is timed separately (first call) and excluded from the throughput figures.  When ``torch`` and
``timm`` import, ``timm``'s ``efficientnet_b0`` / ``tf_efficientnet_b0`` run eagerly in a subprocess (so
``OMP_NUM_THREADS`` for torch does not leak into MindSpore's process, whose kernels use OpenMP too) with the same
batch, resolution, loss (cross-entropy, label smoothing 0.1) and optimizer (SGD momentum 0.9).

Run from a scratch directory (MindSpore writes into the CWD), e.g.::

    cd /tmp && GLOG_v=3 python /path/to/benchmarks/bench_model.py --arch b0 --batch-size 32 --steps 5 --mode both
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Callable, Dict, List, Optional

TIMM_MODELS = ('efficientnet_b0', 'tf_efficientnet_b0')


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--arch', default='b0', help='effnet_mm variant (b0 ... b8, l2)')
    parser.add_argument('--img-size', type=int, default=224)
    parser.add_argument('--batch-size', type=int, default=32)
    parser.add_argument('--steps', type=int, default=5, help='timed steps after the compile/warm-up step')
    parser.add_argument('--mode', choices=('infer', 'train', 'both'), default='both')
    parser.add_argument('--no-fast-conv', action='store_true', help='use MindSpore Conv2D for every conv')
    parser.add_argument('--no-timm', action='store_true', help='skip the timm comparison')
    parser.add_argument('--timm-models', nargs='+', default=list(TIMM_MODELS))
    parser.add_argument('--torch-threads', type=int, default=1, help='OMP_NUM_THREADS / torch threads for timm')
    parser.add_argument('--timm-worker', default=None, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def _time_steps(step: Callable[[], None], steps: int) -> Dict[str, float]:
    """Time one warm-up (compile) call, then ``steps`` calls; ``step`` must block until its result is ready."""
    start = time.perf_counter()
    step()
    first = time.perf_counter() - start
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return dict(first_s=first, mean_s=statistics.mean(times), best_s=min(times))


def _throughput(result: Dict[str, float], batch: int) -> Dict[str, float]:
    return dict(result, ips=batch / result['mean_s'], best_ips=batch / result['best_s'])


def bench_effnet(args: argparse.Namespace) -> Dict[str, Dict[str, float]]:
    """Throughput of effnet_mm under ``ms.jit`` (the first call includes graph compilation)."""
    if args.no_fast_conv:
        os.environ['EFFNET_MM_FAST_CONV'] = '0'
    import mindspore as ms
    import numpy as np
    from mindspore import nn

    from effnet_mm.registry import MODELS
    from effnet_mm.variants import get_variant

    variant = get_variant(args.arch)

    def build() -> nn.Cell:
        ms.set_seed(0)
        return MODELS.build(
            dict(type='ImageClassifier',
                 backbone=dict(type='EfficientNet', arch=args.arch, drop_path_rate=0.2),
                 neck=dict(type='GlobalAveragePooling'),
                 head=dict(type='LinearClsHead', num_classes=1000, in_channels=variant.head_channels,
                           dropout=variant.dropout, loss=dict(type='CrossEntropyLoss', label_smoothing=0.1))))

    rng = np.random.default_rng(0)
    x = ms.Tensor(rng.standard_normal((args.batch_size, 3, args.img_size, args.img_size)).astype(np.float32))
    y = ms.Tensor(rng.integers(0, 1000, args.batch_size).astype(np.int32))
    results = {}
    if args.mode in ('infer', 'both'):
        model = build()
        model.set_train(False)

        @ms.jit
        def infer(inputs):
            return model.classify(inputs)

        results['infer'] = _throughput(_time_steps(lambda: infer(x).asnumpy(), args.steps), args.batch_size)
    if args.mode in ('train', 'both'):
        model = build()
        model.set_train(True)
        opt = nn.Momentum(model.trainable_params(), learning_rate=0.01, momentum=0.9)

        def forward_fn(inputs, labels):
            return model.loss(inputs, labels)

        grad_fn = ms.value_and_grad(forward_fn, None, opt.parameters)

        @ms.jit
        def train_step(inputs, labels):
            loss, grads = grad_fn(inputs, labels)
            opt(grads)
            return loss

        results['train'] = _throughput(_time_steps(lambda: train_step(x, y).asnumpy(), args.steps), args.batch_size)
    return results


def timm_worker(args: argparse.Namespace) -> None:
    """Body of the timm subprocess: print one JSON line with its throughput."""
    import timm
    import torch

    torch.manual_seed(0)
    torch.set_num_threads(args.torch_threads)
    x = torch.randn(args.batch_size, 3, args.img_size, args.img_size)
    y = torch.randint(0, 1000, (args.batch_size, ))
    model = timm.create_model(args.timm_worker, drop_path_rate=0.2)
    results = {}
    if args.mode in ('infer', 'both'):
        model.eval()

        def infer() -> None:
            with torch.inference_mode():
                model(x)

        results['infer'] = _throughput(_time_steps(infer, args.steps), args.batch_size)
    if args.mode in ('train', 'both'):
        model.train()
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        criterion = torch.nn.CrossEntropyLoss(label_smoothing=0.1)

        def train() -> None:
            opt.zero_grad(set_to_none=True)
            loss = criterion(model(x), y)
            loss.backward()
            opt.step()

        results['train'] = _throughput(_time_steps(train, args.steps), args.batch_size)
    results['versions'] = dict(torch=torch.__version__, timm=timm.__version__)
    print('TIMM_RESULT ' + json.dumps(results))


def bench_timm(args: argparse.Namespace, name: str) -> Optional[dict]:
    """Run :func:`timm_worker` for one timm model in a subprocess; None when torch/timm are unavailable."""
    cmd = [sys.executable, os.path.abspath(__file__), '--timm-worker', name, '--img-size', str(args.img_size),
           '--batch-size', str(args.batch_size), '--steps', str(args.steps), '--mode', args.mode,
           '--torch-threads', str(args.torch_threads)]
    env = dict(os.environ, OMP_NUM_THREADS=str(args.torch_threads))
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    for line in proc.stdout.splitlines():
        if line.startswith('TIMM_RESULT '):
            return json.loads(line[len('TIMM_RESULT '):])
    print(f'timm {name}: not measured ({(proc.stderr.strip().splitlines() or ["no output"])[-1]})')
    return None


def _line(label: str, results: dict) -> str:
    parts = []
    for mode in ('infer', 'train'):
        if mode in results:
            r = results[mode]
            parts.append(f'{mode} {r["ips"]:6.2f} img/s (best step {r["best_ips"]:.2f}, '
                         f'first call {r["first_s"]:.1f} s)')
    return f'{label:<44} ' + ' | '.join(parts)


def main(argv: Optional[List[str]] = None) -> None:
    args = parse_args(argv)
    if args.timm_worker:
        timm_worker(args)
        return
    print(f'{args.arch} {args.img_size}px batch {args.batch_size} fp32, {args.steps} timed steps, '
          f'{os.cpu_count()} CPUs; "first call" includes graph compilation (MindSpore) / warm-up (torch)')
    ours = bench_effnet(args)
    from effnet_mm.ops import fast_conv_unavailable_reason

    reason = fast_conv_unavailable_reason()
    print(_line(f'effnet_mm (fast conv {"off: " + reason if reason else "on"})', ours))
    if args.no_timm:
        return
    try:
        import timm  # noqa: F401
        import torch  # noqa: F401
    except Exception as exc:  # noqa: BLE001 - any import failure just means "no comparison"
        print(f'timm comparison skipped: {exc}')
        return
    for name in args.timm_models:
        theirs = bench_timm(args, name)
        if theirs is None:
            continue
        v = theirs['versions']
        print(_line(f'timm {name} (torch {v["torch"]}, {args.torch_threads} thr)', theirs))
        ratios = [f'{m} {ours[m]["ips"] / theirs[m]["ips"]:.2f}x' for m in ('infer', 'train') if m in ours]
        print(f'{"  ratio effnet_mm / " + name:<44} ' + ', '.join(ratios))


if __name__ == '__main__':
    main()
