"""The command-line policy every script under ``tools/`` follows.

* Arguments: the shared options (``--cfg-options``, ``--launcher``, ``--device``, ``--traceback``) come from the
  ``add_*`` helpers, so they are spelled and documented the same everywhere.
* Errors: a failing tool prints ONE line, ``error: <what is wrong>``, to stderr and exits with status 1 (as an
  uncaught exception does in mmpretrain's tools); ``--traceback`` or ``EFFNET_MM_TRACEBACK=1`` shows the full
  trace instead.  A bad command line exits with argparse's status 2; Ctrl-C with 130.
* Logging: MindSpore's C++ log level defaults to errors only (``GLOG_v=3``, set by ``import effnet_mm``).

This module imports neither MindSpore nor the models, so a tool can parse its arguments before the (slow) imports.
"""
from __future__ import annotations

import argparse
import os
import sys
import traceback as traceback_module
from typing import Callable, Optional

from mmengine.config import DictAction

#: Exit statuses of the tools.
EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
#: Environment switch equivalent to ``--traceback``.
TRACEBACK_ENV = 'EFFNET_MM_TRACEBACK'
LAUNCHER_CHOICES = ('none', 'msrun')


def error_message(err: BaseException) -> str:
    """The text of an exception for one line of output (``str(KeyError)`` would quote it and escape newlines)."""
    if isinstance(err, KeyError) and len(err.args) == 1 and isinstance(err.args[0], str):
        return err.args[0]
    return str(err) or type(err).__name__


def positive_int(text: str) -> int:
    """argparse ``type`` of options that take a count >= 1 (a bad value is a usage error, exit status 2)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f'must be an integer >= 1, got {text!r}')
    return value


def add_cfg_options_arg(parser: argparse.ArgumentParser) -> None:
    """``--cfg-options key=value ...`` (mmengine's ``DictAction``)."""
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config keys, e.g. train_cfg.max_epochs=3 model.head.num_classes=5')


def add_device_arg(parser: argparse.ArgumentParser, default: Optional[str] = None) -> None:
    """``--device CPU|GPU|Ascend[:id]``."""
    parser.add_argument('--device', default=default,
                        help='CPU, GPU or Ascend, optionally ":<id>" (default: env_cfg.device_target in the config, '
                             'else the installed MindSpore\'s device)')


def add_launcher_arg(parser: argparse.ArgumentParser) -> None:
    """``--launcher none|msrun``."""
    parser.add_argument('--launcher', choices=LAUNCHER_CHOICES, default='none', help='job launcher')


def add_traceback_arg(parser: argparse.ArgumentParser) -> None:
    """``--traceback``: show the full trace of an error."""
    parser.add_argument('--traceback', action='store_true',
                        help=f'on error, print the full traceback instead of one line (or set {TRACEBACK_ENV}=1)')


def run_tool(main: Callable[[], int], traceback: bool = False) -> int:
    """Run a tool's ``main`` under the error policy above and return its exit status.

    Args:
        main: the tool's work; returns an exit status (0 on success).
        traceback: show full tracebacks (``--traceback``).
    """
    show_trace = traceback or os.environ.get(TRACEBACK_ENV, '').strip() not in ('', '0')
    try:
        return main()
    except KeyboardInterrupt:
        print('error: interrupted', file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as err:  # noqa: BLE001 - the policy: every failure becomes one line
        if show_trace:
            traceback_module.print_exc()
        else:
            # One ``error:`` line; a message may continue on indented lines (e.g. the list of mismatched tensors).
            print(f'error: {error_message(err)}', file=sys.stderr)
        return EXIT_ERROR


def start_process(device: Optional[str], launcher: str) -> None:
    """Select the device, then join the launcher's process group; must come before anything with side effects.

    msrun also runs the script in its scheduler process, where joining never returns: nothing may be written before
    this call.
    """
    from .dist import init_dist, select_device

    select_device(device)  # before init: the collective backend follows the device
    init_dist(launcher)
