"""Where the time of one EfficientNet training step goes: phases, op families, kernels, framework overhead.

    GLOG_v=3 python benchmarks/profile_step.py --img-size 224 --batch-size 32
    GLOG_v=3 python benchmarks/profile_step.py --config configs/efficientnet/efficientnet-b0_1xb32_demo.py
    GLOG_v=3 python benchmarks/profile_step.py --img-size 224 --eval     # the evaluation forward instead

The model, optimizer (with its param groups) and gradient clipping come from a config (default: the demo config,
with 1000 classes unless ``--num-classes``), the step is the runner's compiled train step
(:class:`effnet_mm.engine.train_step.TrainStep`, called like the runner calls it: host arrays in, drop-path and
dropout masks drawn on the host); inputs are random.  Three measurements, each the median of
``--steps`` calls after a compile call:

1. **phases**: the train-mode forward (loss), the whole step (backward, clipping and the optimizer besides), and the
   EMA update when the config has an ``EMAHook``: each a separately compiled function;
2. **op families**: MindSpore's profiler over ``--steps`` whole steps, op time summed per family; the rest of the
   step's wall time is framework overhead (dispatch, memory, the host between ops);
3. **kernels**: effnet_mm's per-kernel timer (``EFFNET_MM_KERNEL_PROFILE``) over the same steps.

With ``--eval`` the same tables are made for the runner's compiled evaluation forward
(:func:`effnet_mm.engine.train_step.make_eval_step`, model in eval mode) instead of the training step.

Run from a scratch directory if you like: the profiler writes to a temporary folder that is removed afterwards.
"""
from __future__ import annotations

import argparse
import glob
import os
import shutil
import statistics
import tempfile
import time
from collections import defaultdict
from typing import Callable, Dict, List, Optional, Tuple

os.environ.setdefault('GLOG_v', '3')
os.environ.setdefault('EFFNET_MM_KERNEL_PROFILE', '1')  # before the kernel library is loaded

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_CONFIG = os.path.join(ROOT, 'configs', 'efficientnet', 'efficientnet-b0_1xb32_demo.py')

#: MindSpore op types -> family (anything else is "other elementwise / framework ops").
OP_FAMILIES = {
    'Conv2D': '1x1 conv forward (oneDNN)',
    'Conv2DBackpropInput': '1x1 conv input gradient (oneDNN)',
    'Conv2DBackpropFilter': '1x1 conv weight gradient (oneDNN)',
    'AddN': 'gradient sums (AddN)',
    'MatMul': 'head (MatMul, bias)',
    'BiasAdd': 'head (MatMul, bias)',
    'BiasAddGrad': 'head (MatMul, bias)',
    'ApplyRMSProp': 'optimizer update',
    'AdamWeightDecay': 'optimizer update',
    'ApplyMomentum': 'optimizer update',
    'Custom': 'effnet_mm kernels (see the kernel table)',
}

#: Kernel function name prefix -> family.
KERNEL_FAMILIES = (
    ('effnet_dw_fwd', 'depthwise conv forward'),
    ('effnet_dw_bwd_x', 'depthwise conv input gradient'),
    ('effnet_dw_bwd_w', 'depthwise conv weight gradient'),
    ('effnet_dense_fwd', 'stem conv forward'),
    ('effnet_dense_bwd', 'stem conv gradients'),
    ('effnet_bn_stats', 'BN batch statistics'),
    ('effnet_bn_act_silu_grad', 'BN + SiLU backward'),
    ('effnet_bn_act_grad', 'BN backward'),
    ('effnet_bn_act', 'BN (+ SiLU) forward'),
    ('effnet_silu_grad', 'SiLU backward (SE)'),
    ('effnet_silu', 'SiLU forward (SE)'),
    ('effnet_sigmoid_gate_grad', 'SE gate backward'),
    ('effnet_sigmoid_gate', 'SE gate forward (and its input gradient)'),
    ('effnet_spatial_mean_grad', 'SE mean backward'),
    ('effnet_spatial_mean', 'SE mean forward'),
)


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--config', default=DEFAULT_CONFIG, help='model / optim_wrapper / EMA settings')
    parser.add_argument('--img-size', type=int, default=64)
    parser.add_argument('--batch-size', type=int, default=32)
    parser.add_argument('--num-classes', type=int, default=None, help='override the head (default: the config)')
    parser.add_argument('--steps', type=int, default=3, help='timed calls per measurement (after a compile call)')
    parser.add_argument('--eval', action='store_true', help='profile the evaluation forward, not the train step')
    return parser.parse_args(argv)


def _median_seconds(fn: Callable[[], object], steps: int) -> float:
    fn()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _family(kernel: str) -> str:
    for prefix, family in KERNEL_FAMILIES:
        if kernel.startswith(prefix):
            return family
    return kernel


def _op_type_times(output_dir: str) -> Dict[str, float]:
    """Total milliseconds per op type from the profiler's ``cpu_op_type_info_*.csv``."""
    files = glob.glob(os.path.join(output_dir, '**', 'cpu_op_type_info_*.csv'), recursive=True)
    if not files:
        raise RuntimeError(f'the MindSpore profiler wrote no cpu_op_type_info_*.csv under {output_dir}')
    times: Dict[str, float] = {}
    with open(files[0], encoding='utf-8') as f:
        header = f.readline().strip().split(',')
        col_type, col_time = header.index('op_type'), header.index('total_compute_time')
        for line in f:
            fields = line.strip().split(',')
            if len(fields) > col_time:
                times[fields[col_type]] = times.get(fields[col_type], 0.0) + float(fields[col_time])
    return times


FORWARD = 'forward (train mode, loss)'
WHOLE = 'whole step (+ clip + optimizer)'
EVAL = 'evaluation forward'


def _train_phases(cfg, model, host_images, host_labels, steps: int) -> Tuple[Callable, float, Dict]:
    """The runner's train step as a zero-argument call, its compile time and the timed phases."""
    import mindspore as ms
    import numpy as np
    from mindspore import Tensor

    from effnet_mm.engine.ema import EMAWeights
    from effnet_mm.engine.optim_wrapper import build_optim_wrapper
    from effnet_mm.engine.randomness import StepMasks
    from effnet_mm.engine.train_step import LossCell, TrainStep

    wrapper = build_optim_wrapper(cfg.optim_wrapper.to_dict(), model)
    train_step = TrainStep(model, wrapper)
    masks = StepMasks.for_model(model, seed=0)
    loss_cell = LossCell(model)
    images, labels = Tensor(host_images), Tensor(host_labels)
    lr = wrapper.base_lr
    batch = len(host_images)
    model.set_train(True)

    def step(iteration=[0]):  # noqa: B006 - the runner's step: host arrays, masks drawn per batch
        iteration[0] += 1
        drop_masks, dropout_mask = masks.draw(0, np.arange(batch) + iteration[0] * batch)
        return train_step(host_images, host_labels, lr, drop_masks, dropout_mask)

    def forward(x, y):
        return loss_cell(x, y)

    forward = ms.jit(forward)
    results = {FORWARD: _median_seconds(lambda: forward(images, labels).asnumpy(), steps)}
    start = time.perf_counter()
    step()
    compile_s = time.perf_counter() - start
    results[WHOLE] = _median_seconds(step, steps)
    if any(h.get('type') == 'EMAHook' for h in cfg.get('custom_hooks', [])):
        ema = EMAWeights(model)
        decay = Tensor(0.99, ms.float32)

        def ema_update(d):
            return ema(d)

        ema_step = ms.jit(ema_update)
        results['EMA update (EMAHook, separate graph)'] = _median_seconds(lambda: ema_step(decay), steps)
    return step, compile_s, results


def _eval_phases(model, host_images, steps: int) -> Tuple[Callable, float, Dict]:
    """The runner's evaluation forward as a zero-argument call, its compile time and its timing."""
    from mindspore import Tensor

    from effnet_mm.engine.train_step import make_eval_step

    model.set_train(False)
    forward = make_eval_step(model)
    images = Tensor(host_images)

    def step():
        return forward(images).asnumpy()

    start = time.perf_counter()
    step()
    compile_s = time.perf_counter() - start
    return step, compile_s, {EVAL: _median_seconds(step, steps)}


def main(argv: Optional[List[str]] = None) -> None:
    args = parse_args(argv)
    import mindspore as ms
    import numpy as np
    from mmengine.config import Config

    from effnet_mm.ops import kernel_stats, kernels_unavailable_reason, reset_kernel_stats
    from effnet_mm.registry import MODELS

    cfg = Config.fromfile(args.config)
    model_cfg = cfg.model.to_dict() if hasattr(cfg.model, 'to_dict') else dict(cfg.model)
    if args.num_classes is not None:
        model_cfg['head']['num_classes'] = args.num_classes
    if 'data_preprocessor' in cfg and 'data_preprocessor' not in model_cfg:
        model_cfg['data_preprocessor'] = dict(cfg.data_preprocessor)
    num_classes = model_cfg['head']['num_classes']
    ms.set_seed(0)
    model = MODELS.build(model_cfg)
    rng = np.random.default_rng(0)
    host_images = rng.integers(0, 256, (args.batch_size, 3, args.img_size, args.img_size), dtype=np.uint8)
    host_labels = rng.integers(0, num_classes, args.batch_size).astype(np.int32)
    what = 'evaluation forward' if args.eval else 'whole step'
    if args.eval:
        step, compile_s, results = _eval_phases(model, host_images, args.steps)
    else:
        step, compile_s, results = _train_phases(cfg, model, host_images, host_labels, args.steps)
    reason = kernels_unavailable_reason()
    print(f'B0-family model of {os.path.relpath(args.config, ROOT)}, {args.img_size}px batch {args.batch_size}, '
          f'{os.cpu_count()} CPUs, kernels {"off: " + reason if reason else "on"}; median of {args.steps} calls')
    print(f'compile + first call of the {what}: {compile_s:.1f} s')
    whole = results[EVAL if args.eval else WHOLE]
    print(f'\n{"phase":<44} {"ms":>9} {"share":>7}')
    for name, seconds in results.items():
        print(f'{name:<44} {seconds * 1e3:9.1f} {seconds / whole:7.1%}')
    if not args.eval:
        rest = whole - results[FORWARD]
        print(f'{"  = backward + clip + optimizer + host work":<44} {rest * 1e3:9.1f} {rest / whole:7.1%}')

    from mindspore import Profiler

    output_dir = tempfile.mkdtemp(prefix='effnet_profile_')
    try:
        reset_kernel_stats()
        profiler = Profiler(output_path=output_dir)
        start = time.perf_counter()
        for _ in range(args.steps):
            step()
        wall_ms = (time.perf_counter() - start) * 1e3 / args.steps
        profiler.stop()
        kernels = kernel_stats()
        profiler.analyse()
        op_ms = {k: v / args.steps for k, v in _op_type_times(output_dir).items()}
    finally:
        shutil.rmtree(output_dir, ignore_errors=True)
    families: Dict[str, float] = defaultdict(float)
    for op_type, ms_per_step in op_ms.items():
        families[OP_FAMILIES.get(op_type, 'other MindSpore ops')] += ms_per_step
    total_ops = sum(op_ms.values())
    print(f'\nop families (MindSpore profiler, {args.steps} calls; wall {wall_ms:.1f} ms per call while profiling)')
    print(f'{"family":<44} {"ms/step":>9} {"share":>7}')
    for name, value in sorted(families.items(), key=lambda kv: -kv[1]):
        print(f'{name:<44} {value:9.1f} {value / wall_ms:7.1%}')
    overhead = wall_ms - total_ops
    print(f'{"framework overhead (wall - op time)":<44} {overhead:9.1f} {overhead / wall_ms:7.1%}')
    others = sorted(((k, v) for k, v in op_ms.items() if k not in OP_FAMILIES and v >= 0.005 * wall_ms),
                    key=lambda kv: -kv[1])
    print('other MindSpore ops (>= 0.5 %): ' + ', '.join(f'{k} {v:.1f}' for k, v in others))
    if kernels:
        by_family: Dict[str, List[float]] = defaultdict(lambda: [0, 0.0])
        for name, (calls, seconds) in kernels.items():
            entry = by_family[_family(name)]
            entry[0] += calls / args.steps
            entry[1] += seconds * 1e3 / args.steps
        print(f'\n{"effnet_mm kernels (own timer)":<44} {"calls":>6} {"ms/step":>9} {"share":>7}')
        for name, (calls, value) in sorted(by_family.items(), key=lambda kv: -kv[1][1]):
            print(f'{name:<44} {calls:6.0f} {value:9.1f} {value / wall_ms:7.1%}')


if __name__ == '__main__':
    main()
