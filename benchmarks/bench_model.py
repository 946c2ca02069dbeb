"""Images/s of an effnet_mm EfficientNet (inference and training) against timm on PyTorch, alternating, same cores.

Each round times ``--steps`` steps of effnet_mm, then the same of every PyTorch formulation, first for inference and
then for training; the figures are medians over ``--rounds`` rounds and each ratio compares effnet_mm with the best
PyTorch formulation.  Graph compilation / ``torch.compile`` and warm-up happen before the first round and are
reported separately.  PyTorch runs in long-lived worker processes (``--torch-python``, e.g. a separate virtualenv
with torch and timm; they are not effnet_mm dependencies) with all cores (``OMP_NUM_THREADS=<cores>``,
``OMP_WAIT_POLICY=PASSIVE`` so idle torch threads do not spin while effnet_mm runs).  Both sides use the same batch,
resolution, loss (cross-entropy, label smoothing 0.1), drop-path 0.2, dropout and SGD momentum 0.9.

PyTorch formulations (``--peers``):

* ``eager``: timm ``efficientnet_<arch>`` (PyTorch-style padding), eager, NCHW;
* ``tf_cl``: timm ``tf_efficientnet_<arch>`` (TF "SAME" padding like effnet_mm), channels_last, eager;
* ``tf_cl_compile``: the same under ``torch.compile`` (inductor, with freezing for inference).

The PyTorch workers warm up both modes even when one is timed (inference ran ~2x faster in a process that had run
a training step).  Time each mode in its own run (``--mode infer`` / ``--mode train``): with ``both``, PyTorch's
inference rounds follow training rounds in the same process and ``torch.compile`` inference measured lower (65-72
against 71-105 img/s alone, B0).

Example (a torch virtualenv at ``../torch``)::

    GLOG_v=3 python benchmarks/bench_model.py --arch b0 --batch-size 32 --mode infer --torch-python ../torch/bin/python
    GLOG_v=3 python benchmarks/bench_model.py --arch b0 --batch-size 32 --mode train --torch-python ../torch/bin/python
    GLOG_v=3 python benchmarks/bench_model.py --arch b3 --batch-size 16 --mode infer --torch-python ../torch/bin/python
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Callable, Dict, List, Optional

PEERS = ('eager', 'tf_cl', 'tf_cl_compile')
MODES = ('infer', 'train')


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--arch', default='b0', help='variant (b0 ... b8, l2)')
    parser.add_argument('--img-size', type=int, default=None, help='default: the variant\'s native resolution')
    parser.add_argument('--batch-size', type=int, default=32)
    parser.add_argument('--steps', type=int, default=3, help='timed steps per round and model')
    parser.add_argument('--rounds', type=int, default=2, help='alternating rounds (the median is reported)')
    parser.add_argument('--mode', choices=('infer', 'train', 'both'), default='both')
    parser.add_argument('--no-kernels', action='store_true', help='effnet_mm on MindSpore ops only')
    parser.add_argument('--ms-threads', type=int, default=None,
                        help='threads of MindSpore\'s own CPU ops (op_tuning.threads_num; default: MindSpore\'s)')
    parser.add_argument('--peers', nargs='*', default=list(PEERS), choices=PEERS,
                        help='PyTorch formulations to compare with (none: effnet_mm alone)')
    parser.add_argument('--torch-python', default=sys.executable, help='Python interpreter that has torch and timm')
    parser.add_argument('--torch-threads', type=int, default=os.cpu_count(), help='threads for PyTorch')
    parser.add_argument('--worker', default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.img_size is None:
        from effnet_mm.variants import get_variant

        args.img_size = get_variant(args.arch).resolution
    return args


def _timed(step: Callable[[], None], steps: int) -> float:
    """Mean seconds per call of ``step`` (which must block until its result is ready)."""
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - start) / steps


class EffnetRunner:
    """effnet_mm's compiled inference and training steps (``ms.jit``), built and compiled once."""

    def __init__(self, args: argparse.Namespace) -> None:
        if args.no_kernels:
            os.environ['EFFNET_MM_KERNELS'] = '0'
        import mindspore as ms
        import numpy as np
        from mindspore import nn

        if args.ms_threads:
            ms.device_context.cpu.op_tuning.threads_num(args.ms_threads)

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
        self.steps: Dict[str, Callable[[], None]] = {}
        self.compile_s: Dict[str, float] = {}
        if args.mode in ('infer', 'both'):
            eval_model = build()
            eval_model.set_train(False)

            def infer(inputs):
                return eval_model.classify(inputs)

            infer = ms.jit(infer)
            self.steps['infer'] = lambda: infer(x).asnumpy()
        if args.mode in ('train', 'both'):
            from effnet_mm.engine.optim_wrapper import build_optim_wrapper
            from effnet_mm.engine.randomness import StepMasks
            from effnet_mm.engine.train_step import TrainStep

            model = build()
            model.set_train(True)
            # The runner's compiled step, called as the runner calls it (host arrays, host-drawn drop-path and
            # dropout masks), with SGD momentum 0.9 like the PyTorch side.
            wrapper = build_optim_wrapper(dict(optimizer=dict(type='SGD', lr=0.01, momentum=0.9)), model)
            train_step = TrainStep(model, wrapper)
            masks = StepMasks.for_model(model, seed=0)
            host_x, host_y = x.asnumpy(), y.asnumpy()

            def train(counter=[0]):  # noqa: B006
                counter[0] += 1
                drop_masks, dropout_mask = masks.draw(0, np.arange(args.batch_size) + counter[0] * args.batch_size)
                train_step(host_x, host_y, 0.01, drop_masks, dropout_mask)

            self.steps['train'] = train
        for mode, step in self.steps.items():
            start = time.perf_counter()
            step()
            self.compile_s[mode] = time.perf_counter() - start
            step()  # warm-up

    def time(self, mode: str, steps: int) -> float:
        return _timed(self.steps[mode], steps)


def torch_worker(args: argparse.Namespace) -> None:
    """Body of a PyTorch worker process: prepare, then answer ``<mode>`` lines on stdin with JSON timings."""
    import types

    # timm imports torchvision, whose operator registration fails against a torch build it was not made for; timm
    # needs none of those operators.
    sys.modules.setdefault('torchvision._meta_registrations', types.ModuleType('torchvision._meta_registrations'))
    import timm
    import torch

    torch.manual_seed(0)
    torch.set_num_threads(args.torch_threads)
    peer = args.worker
    name = f'efficientnet_{args.arch}' if peer == 'eager' else f'tf_efficientnet_{args.arch}'
    channels_last = peer != 'eager'
    model = timm.create_model(name, drop_path_rate=0.2)
    x = torch.randn(args.batch_size, 3, args.img_size, args.img_size)
    y = torch.randint(0, 1000, (args.batch_size, ))
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    if peer.endswith('compile'):
        # Freezing makes the weights constants of inference graphs (folded and prepacked for oneDNN), PyTorch's
        # setting for CPU inference: +10-15 % B0 inference here.  Graphs that need gradients are not frozen.
        import torch._inductor.config
        torch._inductor.config.freezing = True
    forward = torch.compile(model) if peer.endswith('compile') else model
    criterion = torch.nn.CrossEntropyLoss(label_smoothing=0.1)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def infer() -> None:
        model.eval()
        with torch.inference_mode():
            forward(x)

    def train() -> None:
        model.train()
        opt.zero_grad(set_to_none=True)
        criterion(forward(x), y).backward()
        opt.step()

    steps = {'infer': infer, 'train': train}
    compile_s = {}
    # Both modes are warmed up even when one is timed: in a process that has run a training step PyTorch's
    # inference was ~2x faster (B0: 31 -> 59 img/s eager channels_last, the same weights; process state, not the
    # model's values), and the peer gets its best state.
    for mode in MODES:
        start = time.perf_counter()
        steps[mode]()
        compile_s[mode] = time.perf_counter() - start
        steps[mode]()
    print(json.dumps(dict(ready=True, compile_s=compile_s, model=name, torch=torch.__version__,
                          timm=timm.__version__)), flush=True)
    for line in sys.stdin:
        mode = line.strip()
        print(json.dumps(dict(seconds=_timed(steps[mode], args.steps))), flush=True)


class TorchWorker:
    """One long-lived PyTorch worker process (see :func:`torch_worker`)."""

    def __init__(self, args: argparse.Namespace, peer: str) -> None:
        cmd = [args.torch_python, os.path.abspath(__file__), '--worker', peer, '--arch', args.arch, '--img-size',
               str(args.img_size), '--batch-size', str(args.batch_size), '--steps', str(args.steps), '--mode',
               args.mode, '--torch-threads', str(args.torch_threads)]
        env = dict(os.environ, OMP_NUM_THREADS=str(args.torch_threads), OMP_WAIT_POLICY='PASSIVE')
        self.peer = peer
        self.log = tempfile.TemporaryFile(mode='w+')  # a file, not a pipe: a chatty torch.compile cannot block it
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, text=True,
                                     env=env)
        self.info = self._reply()

    def _reply(self) -> dict:
        for line in self.proc.stdout:
            if line.startswith('{'):
                return json.loads(line)
        self.log.seek(0)
        raise RuntimeError(f'PyTorch worker {self.peer} stopped: {self.log.read().strip()[-1500:]}')

    def time(self, mode: str) -> float:
        self.proc.stdin.write(mode + '\n')
        self.proc.stdin.flush()
        return self._reply()['seconds']

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=60)
        self.log.close()


def main(argv: Optional[List[str]] = None) -> None:
    args = parse_args(argv)
    if args.worker:
        torch_worker(args)
        return
    modes = MODES if args.mode == 'both' else (args.mode, )
    print(f'{args.arch} {args.img_size}px batch {args.batch_size} fp32, {os.cpu_count()} CPUs, {args.rounds} rounds '
          f'x {args.steps} steps, alternating; PyTorch with {args.torch_threads} threads; MindSpore op threads '
          f'{args.ms_threads or "default"}', flush=True)
    ours = EffnetRunner(args)
    from effnet_mm.ops import kernels_unavailable_reason

    reason = kernels_unavailable_reason()
    workers = []
    for peer in args.peers:
        try:
            workers.append(TorchWorker(args, peer))
        except (OSError, RuntimeError) as exc:
            print(f'PyTorch {peer}: not measured ({exc})')
    times: Dict[str, Dict[str, List[float]]] = {'effnet_mm': {m: [] for m in modes}}
    times.update({w.peer: {m: [] for m in modes} for w in workers})
    try:
        for _ in range(args.rounds):
            for mode in modes:
                times['effnet_mm'][mode].append(ours.time(mode, args.steps))
                for worker in workers:
                    times[worker.peer][mode].append(worker.time(mode))
    finally:
        for worker in workers:
            worker.close()

    def ips(name: str, mode: str) -> float:
        return args.batch_size / statistics.median(times[name][mode])

    label = f'effnet_mm (kernels {"off: " + reason if reason else "on"})'
    print(f'{label:<58} ' + ' | '.join(f'{m} {ips("effnet_mm", m):6.2f} img/s (compile {ours.compile_s[m]:.1f} s)'
                                       for m in modes))
    for worker in workers:
        info = worker.info
        name = f'{info["model"]} {worker.peer} (torch {info["torch"]}, timm {info["timm"]})'
        print(f'{name:<58} ' + ' | '.join(f'{m} {ips(worker.peer, m):6.2f} img/s (first call '
                                          f'{info["compile_s"][m]:.1f} s)' for m in modes))
    if workers:
        parts = []
        for mode in modes:
            best = max(workers, key=lambda w: ips(w.peer, mode))
            parts.append(f'{mode} {ips("effnet_mm", mode) / ips(best.peer, mode):.2f}x (best: {best.peer})')
        print(f'{"ratio effnet_mm / best PyTorch":<58} ' + ', '.join(parts))


if __name__ == '__main__':
    main()
