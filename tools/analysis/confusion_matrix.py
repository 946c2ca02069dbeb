"""Confusion matrix of a checkpoint on the test set, drawn as a PNG (like mmpretrain's analysis tool).

Examples::

    python tools/analysis/confusion_matrix.py CONFIG CHECKPOINT --show-path cm.png
    python tools/analysis/confusion_matrix.py CONFIG CHECKPOINT --show-path cm.png --include-values --out cm.json

Rows are true classes, columns predicted classes; samples that predicted nothing (non-finite logits or a tied
maximum) appear in an extra "none" column.  Without ``--show-path``/``--out`` the matrix is printed.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from typing import List, Optional

from effnet_mm.runtime import cli

IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp')


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Confusion matrix of a checkpoint on the test set')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file (training or weights-only)')
    parser.add_argument('--show-path', help='write the picture to this file (.png, .jpg, .bmp)')
    parser.add_argument('--include-values', action='store_true', help='write the count into every cell')
    parser.add_argument('--out', help='write the matrix and class names to this JSON file')
    parser.add_argument('--work-dir', help='the dir to save the evaluation log')
    cli.add_cfg_options_arg(parser)
    cli.add_launcher_arg(parser)
    cli.add_device_arg(parser)
    cli.add_traceback_arg(parser)
    return parser.parse_args(argv)


def check_outputs(args: argparse.Namespace) -> None:
    """Refuse outputs that cannot be written, before the evaluation runs."""
    if args.show_path and not args.show_path.lower().endswith(IMAGE_EXTENSIONS):
        raise ValueError(f'--show-path {args.show_path!r}: expected an image file name ending with one of '
                         f'{IMAGE_EXTENSIONS}')
    if args.show_path and os.path.isdir(args.show_path):
        raise ValueError(f'--show-path {args.show_path!r} is a directory; give a file name')
    if args.out:
        from effnet_mm.evaluation import check_json_output
        check_json_output(args.out, '--out')


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)

    def run() -> int:
        cli.start_process(args.device, args.launcher)
        import cv2

        from effnet_mm.engine import Runner
        from effnet_mm.engine.cli import apply_test_args
        from effnet_mm.evaluation import ConfusionMatrix
        from effnet_mm.evaluation.confusion_plot import draw_confusion_matrix
        from effnet_mm.runtime.config import load_config
        from effnet_mm.utils.fileio import atomic_write, write_text

        check_outputs(args)
        cfg = load_config(args.config, args.cfg_options)
        apply_test_args(cfg, args.checkpoint, work_dir=args.work_dir, launcher=args.launcher)
        cfg.test_evaluator = dict(type='ConfusionMatrix')
        runner = Runner.from_cfg(cfg)
        runner.test()
        if runner.rank != 0:
            return cli.EXIT_OK
        (metric, ) = [m for m in runner.test_metrics if isinstance(m, ConfusionMatrix)]
        classes = metric.classes
        if classes is not None and len(classes) != len(metric.matrix):
            classes = None  # the dataset names another number of classes than the head has
        if args.show_path:
            image = draw_confusion_matrix(metric.matrix, classes, metric.no_prediction, args.include_values)
            with atomic_write(args.show_path) as tmp:
                if not cv2.imwrite(tmp, image):
                    raise ValueError(f'--show-path {args.show_path!r}: OpenCV could not write the image')
            print(f'confusion matrix picture written to {args.show_path}')
        if args.out:
            write_text(args.out, json.dumps(dict(classes=list(classes) if classes else None,
                                                 matrix=metric.matrix.tolist(),
                                                 no_prediction=metric.no_prediction.tolist()), indent=1) + '\n')
            print(f'confusion matrix written to {args.out}')
        if not args.show_path and not args.out:
            print('rows: true class, columns: predicted class')
            for i, row in enumerate(metric.matrix):
                name = classes[i] if classes else str(i)
                print(f'{name:>20} ' + ' '.join(f'{int(v):6d}' for v in row))
        return cli.EXIT_OK

    return cli.run_tool(run, args.traceback)


if __name__ == '__main__':
    sys.exit(main())
