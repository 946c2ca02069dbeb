"""Train a classifier: ``python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]] [--amp] ...``."""
import argparse
import sys

from effnet_mm.runtime import cli


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Train a classifier (MindSpore runner)')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument('--resume', nargs='?', type=str, const='auto',
                        help='resume from CKPT, or without a value from the latest checkpoint in the work dir')
    parser.add_argument('--amp', action='store_true', help='fp16 mixed precision with dynamic loss scaling')
    parser.add_argument('--auto-scale-lr', action='store_true', help='scale lr linearly with the global batch size')
    parser.add_argument('--no-validate', action='store_true', help='do not validate during training')
    cli.add_cfg_options_arg(parser)
    cli.add_launcher_arg(parser)
    cli.add_device_arg(parser)
    cli.add_traceback_arg(parser)
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)

    def run() -> int:
        # msrun also runs this script in its scheduler process: join the group before anything with side effects.
        cli.start_process(args.device, args.launcher)
        from effnet_mm.engine import Runner
        from effnet_mm.engine.cli import apply_train_args
        from effnet_mm.runtime.config import load_config

        cfg = load_config(args.config, args.cfg_options)
        apply_train_args(cfg, work_dir=args.work_dir, resume=args.resume, amp=args.amp,
                         auto_scale_lr=args.auto_scale_lr, no_validate=args.no_validate, launcher=args.launcher)
        Runner.from_cfg(cfg).train()
        return cli.EXIT_OK

    return cli.run_tool(run, args.traceback)


if __name__ == '__main__':
    sys.exit(main())
