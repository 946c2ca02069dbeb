"""Evaluate a checkpoint: ``python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out FILE] ...``."""
import argparse
import sys

from effnet_mm.runtime import cli


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Evaluate a classifier checkpoint (MindSpore runner)')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file (training or weights-only)')
    parser.add_argument('--work-dir', help='the dir to save the evaluation log')
    parser.add_argument('--out', help='dump the metrics to this JSON file')
    cli.add_cfg_options_arg(parser)
    cli.add_launcher_arg(parser)
    cli.add_device_arg(parser)
    cli.add_traceback_arg(parser)
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)

    def run() -> int:
        cli.start_process(args.device, args.launcher)
        from effnet_mm.engine import Runner
        from effnet_mm.engine.cli import apply_test_args
        from effnet_mm.runtime.config import load_config
        from effnet_mm.utils.fileio import write_text

        cfg = load_config(args.config, args.cfg_options)
        apply_test_args(cfg, args.checkpoint, work_dir=args.work_dir, launcher=args.launcher)
        runner = Runner.from_cfg(cfg)
        metrics = runner.test()
        if runner.rank == 0:
            for key, value in metrics.items():
                print(f'{key}: {value:.4f}')
            if args.out:
                import json
                write_text(args.out, json.dumps(metrics, indent=2))
        return cli.EXIT_OK

    return cli.run_tool(run, args.traceback)


if __name__ == '__main__':
    sys.exit(main())
