"""Strict configs: read a config so that its errors name the file, and refuse keys that would be silently ignored.

:func:`read_config` is ``Config.fromfile`` whose errors say which file (``_base_`` files included) and line is
wrong.  :func:`check_config` runs on the final config (after ``--cfg-options`` are merged) and reports, with
mmengine-like "did you mean" suggestions:

* top-level keys that look like a typo of a key effnet_mm reads (:data:`TOP_LEVEL_KEYS`), and keys of mmcv 1.x-era
  configs that effnet_mm would ignore (:data:`LEGACY_KEYS`); any other top-level name is a config variable
  (``data_root``, ``dataset_type``, ...) and is allowed;
* unknown keys and wrong value types in ``train_cfg``, ``val_cfg`` and ``test_cfg``;
* unknown hook types, unknown constructor arguments and wrongly typed arguments in every ``default_hooks`` and
  ``custom_hooks`` entry (checked against the hook class's signature, found through the ``HOOKS`` registry).

Configs are Python: reading one executes it, so read only configs you trust like code.
"""
from __future__ import annotations

import ast
import difflib
import inspect
import os
import traceback
import typing
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

from mmengine.config import Config

#: Top-level keys the runner reads (``Runner.from_cfg``).
RUNNER_KEYS: Tuple[str, ...] = (
    'model', 'work_dir', 'experiment_name', 'train_dataloader', 'val_dataloader', 'test_dataloader', 'train_cfg',
    'val_cfg', 'test_cfg', 'optim_wrapper', 'param_scheduler', 'val_evaluator', 'test_evaluator', 'auto_scale_lr',
    'default_hooks', 'custom_hooks', 'data_preprocessor', 'load_from', 'resume', 'randomness', 'launcher', 'env_cfg',
    'log_level', 'vis_backends', 'visualizer')
#: Every top-level key effnet_mm reads: the runner's, mmengine's config machinery (``default_scope``,
#: ``custom_imports``), ``test_pipeline`` (the inference API's fallback pipeline), ``train_pipeline`` (stored with
#: converted weights) and ``tta_model`` / ``tta_pipeline`` (``tools/test.py --tta``).
TOP_LEVEL_KEYS: Tuple[str, ...] = RUNNER_KEYS + ('default_scope', 'custom_imports', 'test_pipeline', 'train_pipeline',
                                                 'tta_model', 'tta_pipeline')
#: Keys of mmcv 1.x / mmcls 0.x configs that effnet_mm (like mmengine) ignores, with what replaces them.
LEGACY_KEYS: Dict[str, str] = {
    'runner': 'train_cfg=dict(by_epoch=True, max_epochs=...)',
    'total_epochs': 'train_cfg.max_epochs',
    'optimizer_config': 'optim_wrapper (clip_grad=..., type=\'AmpOptimWrapper\')',
    'lr_config': 'param_scheduler',
    'evaluation': 'val_evaluator and train_cfg.val_interval',
    'checkpoint_config': 'default_hooks.checkpoint',
    'log_config': 'default_hooks.logger',
    'resume_from': 'resume=True with load_from=<checkpoint>',
    'workflow': 'train_cfg and val_cfg',
    'fp16': 'optim_wrapper=dict(type=\'AmpOptimWrapper\')',
}
#: ``train_cfg`` keys and their types: mmengine's ``EpochBasedTrainLoop`` (``by_epoch=True``, ``max_epochs``) and
#: ``IterBasedTrainLoop`` (``by_epoch=False``, ``max_iters``) arguments.
TRAIN_CFG_KEYS: Dict[str, type] = {'type': str, 'by_epoch': bool, 'max_epochs': int, 'max_iters': int,
                                   'val_interval': int, 'val_begin': int}
#: ``val_cfg`` / ``test_cfg`` keys (mmengine's ``ValLoop`` / ``TestLoop``); ``fp16`` may only be False.
EVAL_CFG_KEYS: Dict[str, type] = {'type': str, 'fp16': bool}
#: ``env_cfg`` keys (None keeps the default: MindSpore's device of the installed wheel, its thread count).
ENV_CFG_KEYS: Dict[str, type] = {'device_target': str, 'cpu_threads': int}
#: ``randomness`` keys (``seed=None``: a random seed, the same on every rank, as in mmengine).
RANDOMNESS_KEYS: Dict[str, type] = {'seed': int}
#: Sections whose keys may be None (their default).
_NONE_MEANS_DEFAULT = ('env_cfg', 'randomness')
#: mmengine's standard ``default_hooks`` names.
DEFAULT_HOOK_NAMES: Tuple[str, ...] = ('runtime_info', 'timer', 'logger', 'param_scheduler', 'checkpoint',
                                      'sampler_seed', 'visualization')
#: Keys of a hook entry that the runner consumes itself (not constructor arguments).
HOOK_ENTRY_KEYS: Tuple[str, ...] = ('type', 'priority')
#: Refused keys of mmengine's loops, with the reason.
_REFUSED = {'train_cfg.dynamic_intervals': 'dynamic validation intervals are not supported; use a fixed '
                                           'train_cfg.val_interval'}


class ConfigError(ValueError):
    """A config that cannot be read or has keys/values effnet_mm would not honour (the message names them)."""


def _did_you_mean(name: str, candidates: Sequence[str], cutoff: float = 0.6) -> str:
    matches = difflib.get_close_matches(name, list(candidates), n=1, cutoff=cutoff)
    return f"; did you mean '{matches[0]}'?" if matches else ''


def _edit_distance(a: str, b: str) -> int:
    """Levenshtein distance counting a swap of neighbours as one edit (optimal string alignment)."""
    previous, current = None, list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        before, previous, current = previous, current, [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = a[i - 1] != b[j - 1]
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                current[j] = min(current[j], before[j - 2] + 1)
    return current[-1]


def _typo_of(name: str, known: Sequence[str]) -> Optional[str]:
    """The known key ``name`` is a typo of: one edit away (two for names longer than 8 characters).

    An edit distance, not a similarity ratio: ``extra_pipeline`` or ``aug_pipeline`` are config variables that share
    a long suffix with ``train_pipeline`` / ``tta_pipeline``, not typos of them.
    """
    limit = 1 if len(name) <= 8 else 2
    distance, best = min((_edit_distance(name, k), k) for k in known)
    return best if distance <= limit else None


# ----------------------------------------------------------------------------------------------- reading
def _literal_strings(node: ast.AST) -> Optional[List[str]]:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, (ast.List, ast.Tuple)) and all(isinstance(e, ast.Constant) and isinstance(e.value, str)
                                                       for e in node.elts):
        return [e.value for e in node.elts]
    return None


def _base_references(tree: ast.Module, path: str) -> List[Tuple[str, str]]:
    """``(as written, resolved path)`` of the base files of a parsed config: ``_base_ = ...`` or ``read_base()``."""
    folder = os.path.dirname(os.path.abspath(path))
    found = []
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == '_base_' for t in node.targets):
            # 'scope::path' bases live in other packages: mmengine resolves them.
            found += [(b, os.path.normpath(os.path.join(folder, b))) for b in _literal_strings(node.value) or []
                      if '::' not in b]
        elif isinstance(node, ast.With):
            for stmt in node.body:
                if isinstance(stmt, ast.ImportFrom) and stmt.level > 0 and stmt.module:
                    root = folder
                    for _ in range(stmt.level - 1):
                        root = os.path.dirname(root)
                    written = '.' * stmt.level + stmt.module
                    found.append((written, os.path.join(root, *stmt.module.split('.')) + '.py'))
    return found


def _find_file_error(path: str, seen: Optional[set] = None) -> Optional[Tuple[str, str]]:
    """The first ``(file, problem)`` of a syntax error or missing base in the tree of ``path`` (depth first)."""
    seen = set() if seen is None else seen
    if path in seen:
        return None
    seen.add(path)
    try:
        with open(path, encoding='utf-8') as f:
            source = f.read()
        tree = ast.parse(source, filename=path)
    except SyntaxError as err:
        return f'{path}, line {err.lineno}', f'SyntaxError: {err.msg}'
    except (OSError, UnicodeDecodeError) as err:
        return path, f'cannot be read ({err})'
    for written, resolved in _base_references(tree, path):
        if not os.path.isfile(resolved):
            return path, f'its base {written!r} does not exist (looked for {resolved})'
        found = _find_file_error(resolved, seen)
        if found:
            return found
    return None


def _innermost_config_frame(err: BaseException) -> Optional[traceback.FrameSummary]:
    """The innermost traceback frame outside mmengine and the standard library: the config line that failed."""
    skip = tuple(os.path.dirname(os.path.abspath(m.__file__)) for m in (os, _mmengine_module()))
    frames = [f for f in traceback.extract_tb(err.__traceback__) if not os.path.abspath(f.filename).startswith(skip)
              and f.filename != __file__]
    return frames[-1] if frames else None


def _mmengine_module():
    import mmengine

    return mmengine


def read_config(path: typing.Union[str, os.PathLike]) -> Config:
    """``Config.fromfile(path)``, with errors that name the file (``_base_`` files included) and line.

    Example::

        cfg = read_config('configs/efficientnet/efficientnet-b0_8xb32_in1k.py')

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ConfigError: a syntax error, a missing base file or an exception while executing a config file (one line:
            the file, the line, the error).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f'config file {path!r} does not exist')
    try:
        return Config.fromfile(path)
    except Exception as err:  # noqa: BLE001 - every failure gets the file that caused it
        located = _find_file_error(os.path.abspath(path))
        if located:
            file, problem = located
            raise ConfigError(f'config file {file}: {problem}') from err
        frame = _innermost_config_frame(err)
        where = f'config file {frame.filename}, line {frame.lineno}' if frame else f'config file {path}'
        message = ' '.join(str(err).split()) or type(err).__name__
        raise ConfigError(f'{where}: {type(err).__name__}: {message}') from err


# ----------------------------------------------------------------------------------------------- checking
def _type_name(expected: type) -> str:
    return {int: 'an int', bool: 'a bool (True or False)', str: 'a str', float: 'a number'}.get(
        expected, expected.__name__)


def _is_instance(value: object, expected: type) -> bool:
    if expected is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if expected is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, expected)


def _check_section(name: str, section: Mapping, schema: Mapping[str, type], problems: List[str]) -> None:
    for key, value in section.items():
        where = f'{name}.{key}'
        if where in _REFUSED:
            problems.append(f'{where}: {_REFUSED[where]}')
        elif key not in schema:
            problems.append(f'{where}: unknown key{_did_you_mean(key, schema)} ({name} keys: {", ".join(schema)})')
        elif not (value is None and name in _NONE_MEANS_DEFAULT) and not _is_instance(value, schema[key]):
            problems.append(f'{where} must be {_type_name(schema[key])}, got {value!r}')
    if name in ('val_cfg', 'test_cfg') and section.get('fp16') is True:
        problems.append(f'{name}.fp16=True is not supported: evaluation runs in float32')


def _hint_matches(value: object, hint: object) -> Optional[bool]:
    """Whether ``value`` fits a simple annotation (None: the annotation is not one this check understands)."""
    if hint is typing.Any:
        return None
    if hint is type(None):
        return value is None
    if hint in (int, float, bool, str):
        return _is_instance(value, hint)
    if typing.get_origin(hint) is typing.Union:
        results = [_hint_matches(value, arg) for arg in typing.get_args(hint)]
        return None if None in results else any(results)
    origin = typing.get_origin(hint)
    if origin in (list, tuple, dict):
        return isinstance(value, (list, tuple) if origin in (list, tuple) else dict)
    return None


def _describe_hint(hint: object) -> str:
    if typing.get_origin(hint) is typing.Union:
        return ' or '.join(_describe_hint(a) for a in typing.get_args(hint))
    if hint is type(None):
        return 'None'
    if hint in (int, float, bool, str):
        return _type_name(hint)
    return getattr(hint, '__name__', str(hint))


def _check_hook(where: str, entry: object, problems: List[str], names: Sequence[str] = ()) -> None:
    if entry is None or not isinstance(entry, Mapping):
        return  # None disables a default hook; a built Hook object is the runner's business
    hook_type = entry.get('type')
    if hook_type is None:
        name = where.rsplit('.', 1)[-1]
        hint = _did_you_mean(name, [n for n in names if n != name]) if names else ''
        problems.append(f'{where} has no type{hint}')
        return
    from effnet_mm.registry import HOOKS

    cls = hook_type if isinstance(hook_type, type) else HOOKS.get(hook_type)
    if cls is None:
        problems.append(f'{where}.type={hook_type!r} is not a registered hook'
                        f'{_did_you_mean(str(hook_type), sorted(HOOKS.module_dict))}')
        return
    signature = inspect.signature(cls.__init__)
    params = {n: p for n, p in signature.parameters.items() if n != 'self'}
    if any(p.kind == p.VAR_KEYWORD for p in params.values()):
        return
    try:
        hints = typing.get_type_hints(cls.__init__)
    except Exception:  # noqa: BLE001 - unresolvable annotations: check the names only
        hints = {}
    accepted = list(params) + list(HOOK_ENTRY_KEYS)
    for key, value in entry.items():
        if key in HOOK_ENTRY_KEYS:
            continue
        if key not in params:
            problems.append(f'{where}.{key}: {cls.__name__} has no argument {key!r}{_did_you_mean(key, accepted)} '
                            f'(accepted: {", ".join(accepted)})')
        elif key in hints and _hint_matches(value, hints[key]) is False:
            problems.append(f'{where}.{key} must be {_describe_hint(hints[key])}, got {value!r}')


def check_config(cfg: Config) -> None:
    """Refuse keys of ``cfg`` that effnet_mm would ignore or misread; run it on the final (merged) config.

    Example::

        cfg = read_config('configs/efficientnet/efficientnet-b0_1xb32_demo.py')
        cfg.merge_from_dict({'train_cfg.max_epoch': 3})
        check_config(cfg)   # ConfigError: ... train_cfg.max_epoch: unknown key; did you mean 'max_epochs'? ...

    Raises:
        ConfigError: one line per problem, after a line naming the config file.
    """
    problems: List[str] = []
    for key in cfg.keys():
        if key in TOP_LEVEL_KEYS or key.startswith('_'):
            continue
        if key in LEGACY_KEYS:
            problems.append(f'{key}: a key of mmcv 1.x-era configs that effnet_mm ignores; use {LEGACY_KEYS[key]}')
            continue
        match = _typo_of(key, TOP_LEVEL_KEYS)
        if match:
            problems.append(f"{key}: unknown top-level key; did you mean '{match}'?")
    for name, schema in (('train_cfg', TRAIN_CFG_KEYS), ('val_cfg', EVAL_CFG_KEYS), ('test_cfg', EVAL_CFG_KEYS),
                         ('env_cfg', ENV_CFG_KEYS), ('randomness', RANDOMNESS_KEYS)):
        section = cfg.get(name)
        if section is None:
            continue
        if not isinstance(section, Mapping):
            problems.append(f'{name} must be a dict or None, got {section!r}')
        else:
            _check_section(name, section, schema, problems)
    default_hooks = cfg.get('default_hooks')
    if default_hooks is not None:
        if not isinstance(default_hooks, Mapping):
            problems.append(f'default_hooks must be a dict of name -> hook config, got {default_hooks!r}')
        else:
            names = list(dict.fromkeys(DEFAULT_HOOK_NAMES + tuple(default_hooks)))
            for name, entry in default_hooks.items():
                typo = None if name in DEFAULT_HOOK_NAMES else _typo_of(name, DEFAULT_HOOK_NAMES)
                if typo and isinstance(entry, Mapping) and 'type' in entry:
                    problems.append(f"default_hooks.{name}: not one of mmengine's default hook names; did you mean "
                                    f"'{typo}'? (a new name adds a second hook)")
                _check_hook(f'default_hooks.{name}', entry, problems, names)
    custom_hooks = cfg.get('custom_hooks')
    if custom_hooks is not None:
        if not isinstance(custom_hooks, (list, tuple)):
            problems.append(f'custom_hooks must be a list of hook configs, got {custom_hooks!r}')
        else:
            for index, entry in enumerate(custom_hooks):
                _check_hook(f'custom_hooks[{index}]', entry, problems)
    if problems:
        source = cfg.filename or '<in memory>'
        if len(problems) == 1:
            raise ConfigError(f'config {source}: {problems[0]}')
        raise ConfigError(f'config {source}: {len(problems)} problems:\n' + '\n'.join(f'  {p}' for p in problems))
