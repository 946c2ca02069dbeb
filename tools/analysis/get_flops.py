"""Parameters and FLOPs of configs, counted analytically from the built model at the config's test resolution.

Examples::

    python tools/analysis/get_flops.py configs/efficientnet/efficientnet-b0_8xb32_in1k.py
    python tools/analysis/get_flops.py configs/efficientnet/*_8xb32_in1k.py --markdown
    python tools/analysis/get_flops.py configs/efficientnet/efficientnet-b3_8xb32_in1k.py --shape 320 --per-layer

MACs are multiply-accumulates (mmpretrain/fvcore/the EfficientNet paper call them "FLOPs"); FLOPs count multiply and
add separately (2 x MACs + bias adds).  Only conv and dense layers are counted.  "params" are the learnable
parameters; BN moving statistics (also in checkpoints) are listed separately.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import List, Optional

from effnet_mm.apis.complexity import ModelCost, count_model_cost
from effnet_mm.apis.inference import test_crop_size
from effnet_mm.runtime import build_classifier, cli, load_config


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Count parameters and FLOPs of effnet_mm configs')
    parser.add_argument('configs', nargs='+', help='config files')
    parser.add_argument('--shape', type=int, nargs='+', help='input H [W] (default: the test pipeline crop)')
    parser.add_argument('--per-layer', action='store_true', help='also print every conv/dense layer')
    parser.add_argument('--markdown', action='store_true', help='print a markdown table')
    cli.add_cfg_options_arg(parser)
    cli.add_traceback_arg(parser)
    return parser.parse_args(argv)


def config_cost(path: str, shape: Optional[List[int]] = None, cfg_options: Optional[dict] = None) -> ModelCost:
    """The :class:`~effnet_mm.apis.complexity.ModelCost` of a config at ``shape`` (default: its test crop)."""
    cfg = load_config(path, cfg_options)
    if shape:
        if len(shape) not in (1, 2) or min(shape) <= 0:
            raise ValueError(f'--shape takes H or H W (positive), got {shape}')
        hw = (shape[0], shape[-1])
    else:
        size = test_crop_size(cfg)
        hw = (size, size)
    return count_model_cost(build_classifier(cfg, init_weights=False), hw)


def format_row(name: str, cost: ModelCost, markdown: bool) -> str:
    cells = [name, f'{cost.input_hw[0]}x{cost.input_hw[1]}', f'{cost.learnable_params / 1e6:.3f}',
             f'{cost.bn_stat_params / 1e6:.3f}', f'{cost.macs / 1e9:.3f}', f'{cost.flops / 1e9:.3f}']
    if markdown:
        return '| ' + ' | '.join(cells) + ' |'
    return f'{cells[0]:<48} {cells[1]:>9} {cells[2]:>10} {cells[3]:>9} {cells[4]:>10} {cells[5]:>11}'


HEADER = ['config', 'input', 'params (M)', 'BN stats (M)', 'GMACs', 'GFLOPs (2xMAC)']


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    return cli.run_tool(lambda: _print_costs(args), args.traceback)


def _print_costs(args: argparse.Namespace) -> int:
    if args.markdown:
        print('| ' + ' | '.join(HEADER) + ' |')
        print('|' + '---|' * len(HEADER))
    else:
        print(f'{HEADER[0]:<48} {HEADER[1]:>9} {HEADER[2]:>10} {HEADER[3]:>9} {HEADER[4]:>10} {HEADER[5]:>11}')
    for path in args.configs:
        try:
            cost = config_cost(path, args.shape, args.cfg_options)
        except Exception as err:
            raise type(err)(f'{path}: {cli.error_message(err)}') from err
        print(format_row(os.path.splitext(os.path.basename(path))[0], cost, args.markdown))
        if args.per_layer:
            for layer in cost.layers:
                print(f'    {layer.name:<44} {layer.kind:<5} out {layer.out_hw[0]:>4}x{layer.out_hw[1]:<4} '
                      f'params {layer.params:>10,d}  MACs {layer.macs:>14,d}')
    print('MACs = multiply-accumulates (mmpretrain/fvcore "FLOPs"); FLOPs = 2 x MACs + bias adds; conv/dense only.')
    return 0


if __name__ == '__main__':
    sys.exit(main())
