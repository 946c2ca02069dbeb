"""Per-op timings of every k x k conv of an EfficientNet: effnet_mm's kernels vs MindSpore's Conv2D.

For each distinct k x k conv of the chosen variant (stem + depthwise convs, shapes taken from the built backbone)
it times, under ``ms.jit``: the forward, and one ``value_and_grad`` of ``sum(conv(x, w) * gy)`` w.r.t. (x, w)
("fwd+bwd", which includes that loss's elementwise ops).  The first call of every function is excluded.  The
MindSpore reference is slow (oneDNN reference kernel); ``--reference`` enables it.

    cd /tmp && GLOG_v=3 python /path/to/benchmarks/bench_conv.py --arch b0 --batch-size 32 --reps 3 --reference
"""
from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable, Dict, List, Optional, Tuple

Shape = Tuple[str, int, int, int, int, int, int]  # kind, C_in, C_out, H, W, k, stride


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--arch', default='b0')
    parser.add_argument('--img-size', type=int, default=224)
    parser.add_argument('--batch-size', type=int, default=32)
    parser.add_argument('--reps', type=int, default=3, help='timed calls per function (after one warm-up call)')
    parser.add_argument('--reference', action='store_true', help='also time MindSpore Conv2D (slow)')
    return parser.parse_args(argv)


def conv_shapes(arch: str, img_size: int) -> Dict[Shape, int]:
    """Distinct k x k convs of a variant at ``img_size`` and how many times each occurs."""
    from effnet_mm.models.backbones import EfficientNet
    from effnet_mm.models.layers import Conv2dSame

    backbone = EfficientNet(arch=arch)
    size = img_size
    counts: Dict[Shape, int] = {}
    # Cells come in forward order; every spatial change happens at a strided conv.
    for _, cell in backbone.cells_and_names():
        if isinstance(cell, Conv2dSame):
            if cell.kernel_size > 1:
                kind = 'depthwise' if cell.groups > 1 else 'dense'
                key = (kind, cell.in_channels, cell.out_channels, size, size, cell.kernel_size, cell.stride)
                counts[key] = counts.get(key, 0) + 1
            size = -(-size // cell.stride)
    return counts


def _timed(fn: Callable[[], None], reps: int) -> float:
    fn()  # compile / warm-up
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def bench_shape(shape: Shape, batch: int, reps: int, reference: bool) -> Dict[str, float]:
    """Milliseconds per call (median) of the kernel and (optionally) the reference conv for one shape."""
    import mindspore as ms
    import numpy as np
    from mindspore import ops

    from effnet_mm.ops import conv_op

    kind, ci, co, h, w, k, s = shape
    groups = ci if kind == 'depthwise' else 1
    rng = np.random.default_rng(0)
    x = ms.Tensor(rng.standard_normal((batch, ci, h, w)).astype(np.float32))
    wt = ms.Tensor(rng.standard_normal((co, ci // groups, k, k)).astype(np.float32) * 0.1)
    gy = ms.Tensor(rng.standard_normal((batch, co, -(-h // s), -(-w // s))).astype(np.float32))
    candidates = {'kernel': conv_op(kind, s)}
    if reference:
        candidates['ms'] = ops.Conv2D(out_channel=co, kernel_size=k, pad_mode='same', stride=s, group=groups)
    result = {}
    for name, op in candidates.items():
        fwd, grad = _jitted(op, gy)
        result[f'{name}_fwd'] = _timed(lambda f=fwd: f(x, wt).asnumpy(), reps)
        result[f'{name}_fwdbwd'] = _timed(lambda g=grad: g(x, wt)[1][1].asnumpy(), reps)
    return result


def _jitted(op: Callable, gy) -> Tuple[Callable, Callable]:
    """Jitted forward and value-and-grad of ``sum(op(x, w) * gy)`` (plain defs: jit cannot parse lambdas)."""
    import mindspore as ms

    def forward(a, b):
        return op(a, b)

    def loss(a, b):
        return (op(a, b) * gy).sum()

    return ms.jit(forward), ms.jit(ms.value_and_grad(loss, (0, 1)))


def main(argv: Optional[List[str]] = None) -> None:
    args = parse_args(argv)
    shapes = conv_shapes(args.arch, args.img_size)
    header = f'{"conv (N=" + str(args.batch_size) + ")":<34} {"count":>5} {"kernel fwd":>10} {"kernel f+b":>10}'
    if args.reference:
        header += f' {"MS fwd":>9} {"MS f+b":>9} {"speedup":>13}'
    print(f'{args.arch} at {args.img_size}px, ms per call (median of {args.reps})')
    print(header)
    total_fwd = total_fb = 0.0
    for shape, count in shapes.items():
        kind, ci, co, h, w, k, s = shape
        r = bench_shape(shape, args.batch_size, args.reps, args.reference)
        total_fwd += count * r['kernel_fwd']
        total_fb += count * r['kernel_fwdbwd']
        label = f'{kind} {ci}->{co} {h}x{w} k{k} s{s}'
        line = f'{label:<34} {count:>5} {r["kernel_fwd"]:10.1f} {r["kernel_fwdbwd"]:10.1f}'
        if args.reference:
            line += (f' {r["ms_fwd"]:9.1f} {r["ms_fwdbwd"]:9.1f} '
                     f'{r["ms_fwd"] / r["kernel_fwd"]:5.0f}x/{r["ms_fwdbwd"] / r["kernel_fwdbwd"]:4.0f}x')
        print(line, flush=True)
    print(f'{"all k x k convs of one step (kernels)":<40} {total_fwd:9.1f} {total_fb:9.1f}')


if __name__ == '__main__':
    main()
