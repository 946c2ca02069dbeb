"""Reading configs: the one ``load_config`` every entry point uses, and the work-dir rule."""
from __future__ import annotations

import copy
import os
from typing import Mapping, Optional, Union

from mmengine.config import Config, ConfigDict

from .config_check import check_config, read_config

ConfigLike = Union[str, os.PathLike, Config]


def load_config(config: ConfigLike, cfg_options: Optional[Mapping[str, object]] = None) -> Config:
    """A :class:`mmengine.Config` from a file path (or a copy of a Config), with ``cfg_options`` merged in and the
    result checked (:func:`~effnet_mm.runtime.config_check.read_config`, then
    :func:`~effnet_mm.runtime.config_check.check_config` on the merged config).

    Configs are Python files: reading one executes it, so only read configs you trust like code.

    Args:
        config: config file path or :class:`~mmengine.config.Config` (copied, never modified).
        cfg_options: ``{'dotted.key': value}`` overrides, as ``--cfg-options`` gives them.

    Raises:
        FileNotFoundError: the file does not exist.
        ConfigError: an error in a config file (named) or a key that would be ignored or misread.
        TypeError: ``config`` is neither a path nor a Config.
    """
    if isinstance(config, Config):
        cfg = copy.deepcopy(config)
    elif isinstance(config, (str, os.PathLike)):
        cfg = read_config(config)
    else:
        raise TypeError(f'config must be a file path or an mmengine Config, got {type(config).__name__}')
    if cfg_options:
        cfg.merge_from_dict(dict(cfg_options))
    check_config(cfg)
    return cfg


def to_plain(value: object) -> object:
    """ConfigDict/tuple trees as plain dicts/lists/tuples (registries and MindSpore want plain containers)."""
    if isinstance(value, (dict, ConfigDict)):
        return {k: to_plain(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return tuple(to_plain(v) for v in value)
    if isinstance(value, list):
        return [to_plain(v) for v in value]
    return value


def config_stem(cfg: Config) -> str:
    """The config file's name without extension (``'config'`` for in-memory configs)."""
    return os.path.splitext(os.path.basename(cfg.filename or 'config'))[0]


def resolve_work_dir(cfg: Config, cli_work_dir: Optional[str] = None) -> str:
    """mmengine's priority: ``--work-dir``, then ``work_dir`` in the config, then ``./work_dirs/<config stem>``."""
    if cli_work_dir:
        return cli_work_dir
    if cfg.get('work_dir'):
        return cfg.work_dir
    return os.path.join('./work_dirs', config_stem(cfg))
