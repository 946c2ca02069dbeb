"""Evaluate a checkpoint: ``python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out FILE.json] [--tta] ...``.

``--out FILE.json`` writes ``{"config", "checkpoint", "metrics", "num_samples", "predictions": [...]}``: the
metrics and one record per evaluated sample (see ``effnet_mm.evaluation.DumpResults``), gathered over all ranks
under ``tools/dist_test.sh``.  ``--out-item metrics`` leaves out the predictions, ``--out-item pred`` the metrics.
"""
import argparse
import os
import sys

from effnet_mm.runtime import cli

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
    cli.add_cfg_options_arg(parser)
    cli.add_launcher_arg(parser)
    cli.add_device_arg(parser)
    cli.add_traceback_arg(parser)
    args = parser.parse_args(argv)
    if args.out_item and not args.out:
        parser.error('--out-item needs --out')
    return args


def main(argv=None) -> int:
    args = parse_args(argv)

    def run() -> int:
        cli.start_process(args.device, args.launcher)
        import json

        from effnet_mm.engine import Runner
        from effnet_mm.engine.cli import apply_test_args
        from effnet_mm.evaluation import DumpResults, add_dump_results, check_json_output, format_metric_value
        from effnet_mm.models.tta import apply_tta
        from effnet_mm.runtime.config import load_config
        from effnet_mm.utils.fileio import write_text

        if args.out:
            check_json_output(args.out, '--out')
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
            return cli.EXIT_OK
        for key, value in metrics.items():
            print(f'{key}: {format_metric_value(value)}')
        evaluated, expected = runner.eval_counts
        print(f'evaluated {evaluated} of {expected} samples')
        if args.out:
            out = dict(config=args.config, checkpoint=args.checkpoint, tta=bool(args.tta))
            if args.out_item != 'pred':
                out['metrics'] = metrics
            if with_predictions:
                dump = next(m for m in runner.test_metrics if isinstance(m, DumpResults))
                out['num_samples'] = len(dump.results)
                out['predictions'] = dump.results
            replaced = os.path.exists(args.out)
            write_text(args.out, json.dumps(out, indent=1) + '\n')
            print(f'results written to {args.out}' + (' (replacing the previous file)' if replaced else ''))
        return cli.EXIT_OK

    return cli.run_tool(run, args.traceback)


if __name__ == '__main__':
    sys.exit(main())
