"""Strict configs: read_config names the broken file, check_config refuses keys that would be silently ignored."""
import inspect
import os
import subprocess
import sys

import pytest
from mmengine.config import Config

from effnet_mm.runtime.config_check import (
    RUNNER_KEYS,
    TOP_LEVEL_KEYS,
    ConfigError,
    check_config,
    read_config,
)
from tests.helpers import CONFIGS, ROOT

DEMO = CONFIGS / 'efficientnet' / 'efficientnet-b0_1xb32_demo.py'


def _child(tmp_path, body, name='child.py'):
    path = tmp_path / name
    path.write_text(f'_base_ = [{str(DEMO)!r}]\n{body}\n')
    return path


def _problems(cfg):
    with pytest.raises(ConfigError) as info:
        check_config(cfg)
    return str(info.value)


@pytest.mark.parametrize('path', sorted(CONFIGS.rglob('*.py')), ids=lambda p: str(p.relative_to(CONFIGS)))
def test_every_shipped_config_passes(path):
    check_config(read_config(path))


def test_a_typo_of_a_top_level_key_is_an_error_with_a_suggestion(tmp_path):
    cfg = read_config(_child(tmp_path, 'train_cfgg = dict(max_epochs=3)'))
    message = _problems(cfg)
    assert message == f"config {tmp_path / 'child.py'}: train_cfgg: unknown top-level key; did you mean 'train_cfg'?"
    cfg = read_config(_child(tmp_path, 'tta_pipline = []'))
    assert _problems(cfg).endswith("tta_pipline: unknown top-level key; did you mean 'tta_pipeline'?")


def test_config_variables_are_allowed(tmp_path):
    cfg = read_config(_child(tmp_path, "my_root = 'data/x'\nextra_pipeline = []\nclasses = ['a', 'b']\n"
                                       "_private = 1\ntta_pipeline = []\ntrain_cfg = dict(max_epochs=3)"))
    check_config(cfg)


def test_a_typo_in_train_cfg_from_cfg_options_is_an_error_with_a_suggestion():
    cfg = read_config(DEMO)
    cfg.merge_from_dict({'train_cfg.max_epoch': 3, 'train_cfg.val_intervall': 2})
    message = _problems(cfg)
    assert message.splitlines()[0] == f'config {DEMO}: 2 problems:'
    assert "train_cfg.max_epoch: unknown key; did you mean 'max_epochs'?" in message
    assert "train_cfg.val_intervall: unknown key; did you mean 'val_interval'?" in message


@pytest.mark.parametrize('key, value, expected', [
    ('train_cfg.max_epochs', 'ten', "train_cfg.max_epochs must be an int, got 'ten'"),
    ('train_cfg.max_iters', 2.5, 'train_cfg.max_iters must be an int, got 2.5'),
    ('train_cfg.val_interval', True, 'train_cfg.val_interval must be an int, got True'),
    ('train_cfg.by_epoch', 'yes', "train_cfg.by_epoch must be a bool (True or False), got 'yes'"),
    ('default_hooks.logger.interval', 'ten', "default_hooks.logger.interval must be an int, got 'ten'"),
    ('default_hooks.checkpoint.save_best', 3, 'default_hooks.checkpoint.save_best must be a str or None, got 3'),
])
def test_a_wrong_value_type_names_the_key(key, value, expected):
    cfg = read_config(DEMO)
    cfg.merge_from_dict({key: value})
    assert _problems(cfg) == f'config {DEMO}: {expected}'


def test_iteration_based_and_mmengine_loop_keys_are_accepted():
    cfg = Config(dict(train_cfg=dict(type='IterBasedTrainLoop', by_epoch=False, max_iters=100, val_interval=50,
                                     val_begin=1),
                      val_cfg=dict(type='ValLoop', fp16=False), test_cfg=dict(), default_hooks=None, custom_hooks=[]))
    check_config(cfg)


@pytest.mark.parametrize('section, expected', [
    (dict(train_cfg=dict(max_epochs=2, dynamic_intervals=[(1, 2)])),
     'train_cfg.dynamic_intervals: dynamic validation intervals are not supported'),
    (dict(val_cfg=dict(fp16=True)), 'val_cfg.fp16=True is not supported: evaluation runs in float32'),
    (dict(test_cfg=dict(metric='x')), "test_cfg.metric: unknown key (test_cfg keys: type, fp16)"),
    (dict(train_cfg=[1]), 'train_cfg must be a dict or None, got [1]'),
    (dict(lr_config=dict(policy='step')), 'lr_config: a key of mmcv 1.x-era configs that effnet_mm ignores; '
                                          'use param_scheduler'),
])
def test_refused_sections(section, expected):
    assert expected in _problems(Config(section))


def test_hook_entries_are_checked_against_the_hook_class():
    cfg = Config(dict(
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', intervall=2), loger=dict(interval=3),
                           checkpont=dict(type='CheckpointHook'), timer=None),
        custom_hooks=[dict(type='EMAHook', momentun=0.1, priority='ABOVE_NORMAL'), dict(type='EMAHok')]))
    lines = _problems(cfg).splitlines()
    assert lines[0] == 'config <in memory>: 5 problems:'
    assert lines[1].startswith("  default_hooks.checkpoint.intervall: CheckpointHook has no argument 'intervall'; "
                               "did you mean 'interval'? (accepted: interval, ")
    assert lines[2] == "  default_hooks.loger has no type; did you mean 'logger'?"
    assert lines[3] == ("  default_hooks.checkpont: not one of mmengine's default hook names; did you mean "
                        "'checkpoint'? (a new name adds a second hook)")
    assert lines[4].startswith("  custom_hooks[0].momentun: EMAHook has no argument 'momentun'; did you mean "
                               "'momentum'?")
    assert lines[5] == "  custom_hooks[1].type='EMAHok' is not a registered hook; did you mean 'EMAHook'?"


def test_a_syntax_error_in_a_base_file_names_that_file_and_line(tmp_path):
    (tmp_path / '_base_').mkdir()
    (tmp_path / '_base_' / 'broken.py').write_text('a = 1\nb = dict(x=1\nc = 2\n')
    (tmp_path / 'child.py').write_text("_base_ = ['./_base_/broken.py']\nd = 3\n")
    with pytest.raises(ConfigError, match=r'^config file .*/_base_/broken\.py, line 2: SyntaxError: '
                                          r"'\(' was never closed$"):
        read_config(tmp_path / 'child.py')


def test_a_missing_base_file_is_named_with_the_file_that_uses_it(tmp_path):
    (tmp_path / 'child.py').write_text("_base_ = ['./_base_/nope.py']\n")
    with pytest.raises(ConfigError) as info:
        read_config(tmp_path / 'child.py')
    assert str(info.value) == (f"config file {tmp_path / 'child.py'}: its base './_base_/nope.py' does not exist "
                               f"(looked for {tmp_path / '_base_' / 'nope.py'})")


def test_an_error_while_executing_a_base_file_names_file_and_line(tmp_path):
    (tmp_path / 'base.py').write_text('a = 1\nb = undefined_name + 1\n')
    (tmp_path / 'child.py').write_text("_base_ = './base.py'\n")
    with pytest.raises(ConfigError) as info:
        read_config(tmp_path / 'child.py')
    assert str(info.value) == (f"config file {tmp_path / 'base.py'}, line 2: NameError: name 'undefined_name' "
                               f"is not defined")


def test_a_missing_config_file():
    with pytest.raises(FileNotFoundError, match="config file 'no_such.py' does not exist"):
        read_config('no_such.py')


def test_every_runner_key_is_a_runner_argument():
    from effnet_mm.engine.runner import Runner

    arguments = set(inspect.signature(Runner.__init__).parameters)
    assert set(RUNNER_KEYS) - {'visualizer'} <= arguments
    assert set(RUNNER_KEYS) <= set(TOP_LEVEL_KEYS)


def test_train_tool_checks_the_config_after_cfg_options(tmp_path):
    """A typo in ``--cfg-options`` stops tools/train.py with one error line before anything is built or written."""
    env = dict(os.environ, GLOG_v='3', PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get('PYTHONPATH', ''))
    result = subprocess.run([sys.executable, str(ROOT / 'tools' / 'train.py'), str(DEMO), '--work-dir', 'w',
                             '--cfg-options', 'train_cfg.max_epoch=3'], cwd=tmp_path, env=env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "train_cfg.max_epoch: unknown key; did you mean 'max_epochs'?" in lines[0], lines
    assert not (tmp_path / 'w').exists()


@pytest.mark.parametrize('key, value, message', [
    ('randomness', dict(sed=1), r"randomness.sed: unknown key.*'seed'"),
    ('randomness', dict(seed='one'), "randomness.seed must be an int, got 'one'"),
    ('env_cfg', dict(device='CPU'), r"env_cfg.device: unknown key"),
    ('env_cfg', dict(cpu_threads=2.5), 'env_cfg.cpu_threads must be an int'),
])
def test_env_cfg_and_randomness_keys_are_checked(key, value, message):
    with pytest.raises(ConfigError, match=message):
        check_config(Config({key: value}))
    check_config(Config({'env_cfg': dict(device_target=None, cpu_threads=None), 'randomness': dict(seed=None)}))
