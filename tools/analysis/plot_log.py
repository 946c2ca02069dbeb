"""Plot training curves (loss, learning rate, validation top-1) from a run's ``vis_data/scalars.json``.

Examples::

    python tools/analysis/plot_log.py work_dirs/efficientnet-b0_1xb32_demo/20261122_101500/vis_data/scalars.json
    python tools/analysis/plot_log.py run1/vis_data/scalars.json run2/vis_data/scalars.json \\
        --keys loss accuracy/top1 --x epoch --out curves.png --legend b0 b0-aa

``scalars.json`` holds one JSON object per line, as effnet_mm's and mmengine's ``LocalVisBackend`` write it: training
lines ``{"loss": 2.1, "lr": 0.016, "epoch": 1, "iter": 50, "step": 50}`` and validation lines
``{"accuracy/top1": 41.2, "epoch": 1, "step": 1}`` (their step is the epoch; they are drawn at the epoch's last
iteration on a step axis).  matplotlib is
needed (``pip install matplotlib``) but is not a dependency of effnet_mm.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Dict, List, Optional, Sequence, Tuple

from effnet_mm.runtime import cli
from effnet_mm.utils.fileio import atomic_write

DEFAULT_KEYS = ('loss', 'lr', 'accuracy/top1')


def load_scalars(path: str) -> List[dict]:
    """The records of a ``scalars.json`` file (blank lines skipped).

    Raises:
        FileNotFoundError: no such file.
        ValueError: a line is not a JSON object (the message names the file and line).
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f'scalars file not found: {path}')
    records = []
    with open(path, encoding='utf-8') as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f'{path}:{lineno}: not valid JSON ({err.msg}): {line.strip()[:80]}') from err
            if not isinstance(record, dict):
                raise ValueError(f'{path}:{lineno}: expected a JSON object, got {type(record).__name__}')
            records.append(record)
    return records


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def epoch_ends(records: Sequence[dict]) -> Dict[int, float]:
    """The last logged iteration of each epoch, from the iteration-indexed (training) records."""
    ends: Dict[int, float] = {}
    for record in records:
        if _is_number(record.get('iter')) and _is_number(record.get('epoch')):
            epoch = int(record['epoch'])
            ends[epoch] = max(ends.get(epoch, 0), float(record['iter']))
    return ends


def x_value(record: dict, x: str, ends: Dict[int, float]) -> Optional[float]:
    """Where ``record`` goes on the ``x`` axis.

    Training records carry ``iter`` (and ``step`` = ``iter``); validation records are epoch-indexed (their ``step``
    is the epoch, as mmengine writes them).  So on a ``step``/``iter`` axis a validation point is placed at the last
    iteration of its epoch, and on an ``epoch`` axis a training point at its fractional epoch.
    """
    if not _is_number(record.get('iter')):  # epoch-indexed record
        epoch = record.get('epoch', record.get('step'))
        if not _is_number(epoch):
            return None
        if x == 'epoch':
            return float(epoch)
        return ends.get(int(epoch), float(record[x]) if _is_number(record.get(x)) else None)
    if x != 'epoch':
        return float(record['iter'] if x == 'iter' else record.get('step', record['iter']))
    if not _is_number(record.get('epoch')):
        return None
    epoch = int(record['epoch'])
    start, end = ends.get(epoch - 1, 0.0), ends.get(epoch)
    if end is None or end <= start:
        return float(epoch)
    return epoch - 1 + (float(record['iter']) - start) / (end - start)


def series(records: Sequence[dict], key: str, x: str = 'step') -> Tuple[List[float], List[float]]:
    """``(xs, ys)`` of every record with a numeric ``key`` that can be placed on the ``x`` axis (see
    :func:`x_value`)."""
    ends = epoch_ends(records)
    xs, ys = [], []
    for record in records:
        if not _is_number(record.get(key)):
            continue
        xv = x_value(record, x, ends)
        if xv is not None:
            xs.append(xv)
            ys.append(float(record[key]))
    return xs, ys


def _import_pyplot():
    try:
        import matplotlib
    except ImportError as err:
        raise ImportError('plot_log.py needs matplotlib, which effnet_mm does not install: pip install matplotlib') \
            from err
    matplotlib.use('Agg')  # files only: works without a display
    import matplotlib.pyplot as plt
    return plt


def plot(runs: Dict[str, List[dict]], keys: Sequence[str], x: str, out: str, title: Optional[str] = None) -> str:
    """One subplot per key, one line per run; writes a PNG to ``out`` and returns it.

    Raises:
        ValueError: none of the runs has any value of a key.
    """
    plt = _import_pyplot()
    fig, axes = plt.subplots(len(keys), 1, figsize=(8, 3 * len(keys)), squeeze=False)
    for ax, key in zip(axes[:, 0], keys):
        plotted = False
        for label, records in runs.items():
            xs, ys = series(records, key, x)
            if xs:
                ax.plot(xs, ys, marker='o' if len(xs) < 30 else None, label=label)
                plotted = True
        if not plotted:
            plt.close(fig)
            present = sorted({k for records in runs.values() for r in records for k in r})
            raise ValueError(f'no run has values of {key!r} against {x!r}; keys in the logs: {present}')
        ax.set_ylabel(key)
        ax.set_xlabel(x)
        ax.grid(True, alpha=0.3)
        if len(runs) > 1:
            ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    with atomic_write(out) as tmp:
        fig.savefig(tmp, dpi=100, format='png')
    plt.close(fig)
    return out


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Plot loss / lr / top-1 curves from vis_data/scalars.json')
    parser.add_argument('logs', nargs='+', help='scalars.json files (one per run)')
    parser.add_argument('--keys', nargs='+', default=list(DEFAULT_KEYS), help=f'scalars to plot {DEFAULT_KEYS}')
    parser.add_argument('--x', default='step', choices=['step', 'epoch', 'iter'], help='x axis (default step)')
    parser.add_argument('--legend', nargs='+', help='one name per log (default: the file paths)')
    parser.add_argument('--title', help='figure title')
    parser.add_argument('--out', default='training_curves.png', help='output PNG (default training_curves.png)')
    cli.add_traceback_arg(parser)
    args = parser.parse_args(argv)
    if args.legend and len(args.legend) != len(args.logs):
        parser.error(f'--legend has {len(args.legend)} names for {len(args.logs)} logs')
    return args


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)

    def run() -> int:
        names = args.legend or args.logs
        runs = {name: load_scalars(path) for name, path in zip(names, args.logs)}
        print(f'Saved {plot(runs, args.keys, args.x, args.out, args.title)}')
        return cli.EXIT_OK

    return cli.run_tool(run, args.traceback)


if __name__ == '__main__':
    sys.exit(main())
