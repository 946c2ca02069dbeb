"""Evaluate a checkpoint: ``python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out FILE] ...``."""
import argparse
import os
import sys

os.environ.setdefault('GLOG_v', '3')  # MindSpore's C++ logging: errors only (before mindspore is imported)

from mmengine.config import DictAction  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Evaluate a classifier checkpoint (MindSpore runner)')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file (training or weights-only)')
    parser.add_argument('--work-dir', help='the dir to save the evaluation log')
    parser.add_argument('--out', help='dump the metrics to this JSON file')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config keys, e.g. test_dataloader.batch_size=64')
    parser.add_argument('--launcher', choices=['none', 'msrun'], default='none', help='job launcher')
    parser.add_argument('--device', choices=['CPU', 'GPU', 'Ascend'],
                        help="device to run on (default: env_cfg.device_target, else the installed MindSpore's)")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    from effnet_mm.engine.dist import init_dist, select_device
    select_device(args.device)  # before init: the collective backend follows the device
    init_dist(args.launcher)

    from effnet_mm.engine.cli import apply_test_args, load_config, run_reporting_errors

    def run() -> int:
        from mmengine.fileio import dump

        from effnet_mm.engine import Runner
        cfg = load_config(args.config, args.cfg_options)
        apply_test_args(cfg, args.checkpoint, work_dir=args.work_dir, launcher=args.launcher)
        runner = Runner.from_cfg(cfg)
        metrics = runner.test()
        if runner.rank == 0:
            for key, value in metrics.items():
                print(f'{key}: {value:.4f}')
            if args.out:
                dump(metrics, args.out)
        return 0

    return run_reporting_errors(run)


if __name__ == '__main__':
    sys.exit(main())
