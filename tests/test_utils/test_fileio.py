"""effnet_mm.utils.fileio: the atomic writer every file output goes through."""
import os

import pytest

from effnet_mm.utils.fileio import atomic_write, partial_path, remove_stale_partials, write_text


def test_success_replaces_and_leaves_no_temporary(tmp_path):
    target = tmp_path / 'sub' / 'out.ckpt'
    with atomic_write(str(target)) as tmp:
        assert tmp.endswith('.ckpt') and os.path.dirname(tmp) == str(target.parent)
        with open(tmp, 'w') as f:
            f.write('new')
    assert target.read_text() == 'new'
    assert os.listdir(target.parent) == ['out.ckpt']


def test_failure_keeps_the_previous_file(tmp_path):
    target = tmp_path / 'out.txt'
    target.write_text('old')
    with pytest.raises(ZeroDivisionError):
        with atomic_write(str(target)) as tmp:
            with open(tmp, 'w') as f:
                f.write('half')
            raise ZeroDivisionError
    assert target.read_text() == 'old'
    assert os.listdir(tmp_path) == ['out.txt']


def test_writer_that_creates_nothing_is_an_error(tmp_path):
    with pytest.raises(RuntimeError, match='created nothing'):
        with atomic_write(str(tmp_path / 'x.bin')):
            pass
    assert os.listdir(tmp_path) == []


def test_no_overwrite(tmp_path):
    target = tmp_path / 'out.txt'
    target.write_text('old')
    with pytest.raises(FileExistsError, match='out.txt'):
        with atomic_write(str(target), overwrite=False):
            raise AssertionError('the block must not run')
    assert target.read_text() == 'old'


def test_folder_output_refused_when_a_concurrent_writer_won(tmp_path):
    target = tmp_path / 'dataset'
    with atomic_write(str(tmp_path / 'first'), overwrite=False) as tmp:
        os.makedirs(os.path.join(tmp, 'train'))
    assert os.listdir(tmp_path / 'first') == ['train']
    with pytest.raises(FileExistsError):
        with atomic_write(str(target), overwrite=False) as tmp:
            os.makedirs(tmp)
            target.mkdir()
    assert sorted(os.listdir(tmp_path)) == ['dataset', 'first'] and os.listdir(target) == []


def test_file_cannot_replace_a_folder(tmp_path):
    (tmp_path / 'out.ckpt').mkdir()
    with pytest.raises(IsADirectoryError, match='out.ckpt'):
        with atomic_write(str(tmp_path / 'out.ckpt')) as tmp:
            open(tmp, 'w').close()
    assert os.path.isdir(tmp_path / 'out.ckpt')


def test_stale_partials_are_removed_and_nothing_else(tmp_path):
    keep = ['epoch_1.ckpt', '.hidden', 'notes.partial.txt', '.x.partial.ckpt']
    for name in keep:
        (tmp_path / name).write_text('keep')
    stale = [os.path.basename(partial_path(str(tmp_path / 'epoch_2.ckpt'))),
             os.path.basename(partial_path(str(tmp_path / 'epoch_3.ckpt'))) + '.tmp']
    for name in stale:
        (tmp_path / name).write_text('stale')
    removed = remove_stale_partials(str(tmp_path))
    assert sorted(os.path.basename(p) for p in removed) == sorted(stale)
    assert sorted(os.listdir(tmp_path)) == sorted(keep)


def test_write_text(tmp_path):
    path = write_text(str(tmp_path / 'last_checkpoint'), 'epoch_2.ckpt')
    assert open(path).read() == 'epoch_2.ckpt'
