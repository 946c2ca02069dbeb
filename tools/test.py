"""Evaluate a checkpoint: ``python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out FILE.json] [--tta] ...``.

``--out FILE.json`` writes ``{"config", "checkpoint", "metrics", "num_samples", "predictions": [...]}``: the
metrics and one record per evaluated sample (see ``effnet_mm.evaluation.DumpResults``), gathered over all ranks
under ``tools/dist_test.sh``.  ``--out-item metrics`` leaves out the predictions, ``--out-item pred`` the metrics.
"""
import argparse
import os
import sys

os.environ.setdefault('GLOG_v', '3')  # MindSpore's C++ logging: errors only (before mindspore is imported)

from mmengine.config import DictAction  # noqa: E402

OUT_ITEMS = ('pred', 'metrics')


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Evaluate a classifier checkpoint (MindSpore runner)')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file (training or weights-only)')
    parser.add_argument('--work-dir', help='the dir to save the evaluation log')
    parser.add_argument('--out', help='write the metrics and per-sample predictions to this JSON file')
    parser.add_argument('--out-item', choices=OUT_ITEMS,
                        help='write only the per-sample predictions (pred) or only the metrics (metrics); default both')
    parser.add_argument('--tta', action='store_true',
                        help='test-time augmentation: average the softmax of flipped views (config keys tta_model, '
                             'tta_pipeline; default: horizontal flip)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config keys, e.g. test_dataloader.batch_size=64')
    parser.add_argument('--launcher', choices=['none', 'msrun'], default='none', help='job launcher')
    parser.add_argument('--device', choices=['CPU', 'GPU', 'Ascend'],
                        help="device to run on (default: env_cfg.device_target, else the installed MindSpore's)")
    args = parser.parse_args(argv)
    if args.out_item and not args.out:
        parser.error('--out-item needs --out')
    return args


def check_out_path(path: str) -> None:
    """Refuse an output the run could not write, before any work is done."""
    if not path.endswith('.json'):
        raise ValueError(f'--out {path!r}: the results are written as JSON, the file name must end with .json')
    if os.path.isdir(path):
        raise ValueError(f'--out {path!r} is a directory; give a file name ending with .json')


def add_dump_results(cfg) -> None:
    """Append a ``DumpResults`` metric to ``test_evaluator`` (what mmpretrain's ``--out`` does)."""
    evaluator = cfg.get('test_evaluator')
    if not evaluator:
        raise KeyError(f'{cfg.filename}: --out needs test_evaluator in the config')
    evaluator = list(evaluator) if isinstance(evaluator, (list, tuple)) else [evaluator]
    cfg.test_evaluator = evaluator + [dict(type='DumpResults')]


def main(argv=None) -> int:
    args = parse_args(argv)
    from effnet_mm.engine.dist import init_dist, select_device
    select_device(args.device)  # before init: the collective backend follows the device
    init_dist(args.launcher)

    from effnet_mm.engine.cli import apply_test_args, load_config, run_reporting_errors

    def run() -> int:
        import json

        from effnet_mm.engine import Runner
        from effnet_mm.evaluation import DumpResults, format_metric_value
        from effnet_mm.models.tta import apply_tta
        from effnet_mm.utils.fileio import write_text

        if args.out:
            check_out_path(args.out)
        cfg = load_config(args.config, args.cfg_options)
        apply_test_args(cfg, args.checkpoint, work_dir=args.work_dir, launcher=args.launcher)
        if args.tta:
            apply_tta(cfg)
        with_predictions = bool(args.out) and args.out_item != 'metrics'
        if with_predictions:
            add_dump_results(cfg)
        runner = Runner.from_cfg(cfg)
        metrics = runner.test()
        if runner.rank != 0:
            return 0
        for key, value in metrics.items():
            print(f'{key}: {format_metric_value(value)}')
        if args.out:
            out = dict(config=args.config, checkpoint=args.checkpoint, tta=bool(args.tta))
            if args.out_item != 'pred':
                out['metrics'] = metrics
            if with_predictions:
                dump = next(m for m in runner.test_metrics if isinstance(m, DumpResults))
                out['num_samples'] = len(dump.results)
                out['predictions'] = dump.results
                print(f'evaluated {len(dump.results)} of {dump.num_expected} samples')
            replaced = os.path.exists(args.out)
            write_text(args.out, json.dumps(out, indent=1) + '\n')
            print(f'results written to {args.out}' + (' (replacing the previous file)' if replaced else ''))
        return 0

    return run_reporting_errors(run)


if __name__ == '__main__':
    sys.exit(main())
