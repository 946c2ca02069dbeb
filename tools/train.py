"""Train a classifier: ``python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]] [--amp] ...``."""
import argparse
import os
import sys

os.environ.setdefault('GLOG_v', '3')  # MindSpore's C++ logging: errors only (before mindspore is imported)

from mmengine.config import DictAction  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Train a classifier (MindSpore runner)')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument('--resume', nargs='?', type=str, const='auto',
                        help='resume from CKPT, or without a value from the latest checkpoint in the work dir')
    parser.add_argument('--amp', action='store_true', help='fp16 mixed precision with dynamic loss scaling')
    parser.add_argument('--auto-scale-lr', action='store_true', help='scale lr linearly with the global batch size')
    parser.add_argument('--no-validate', action='store_true', help='do not validate during training')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config keys, e.g. train_cfg.max_epochs=3 model.head.num_classes=5')
    parser.add_argument('--launcher', choices=['none', 'msrun'], default='none', help='job launcher')
    parser.add_argument('--device', choices=['CPU', 'GPU', 'Ascend'],
                        help="device to run on (default: env_cfg.device_target, else the installed MindSpore's)")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    # msrun also runs this script in its scheduler process: join the group before anything with side effects.
    from effnet_mm.engine.dist import init_dist, select_device
    select_device(args.device)  # before init: the collective backend follows the device
    init_dist(args.launcher)

    from effnet_mm.engine.cli import apply_train_args, load_config, run_reporting_errors

    def run() -> int:
        from effnet_mm.engine import Runner
        cfg = load_config(args.config, args.cfg_options)
        apply_train_args(cfg, work_dir=args.work_dir, resume=args.resume, amp=args.amp,
                         auto_scale_lr=args.auto_scale_lr, no_validate=args.no_validate, launcher=args.launcher)
        Runner.from_cfg(cfg).train()
        return 0

    return run_reporting_errors(run)


if __name__ == '__main__':
    sys.exit(main())
