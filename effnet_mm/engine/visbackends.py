"""Scalar logging backends: mmengine's ``LocalVisBackend`` and ``TensorboardVisBackend`` (which import torch) as
dependency-free twins."""
from __future__ import annotations

import itertools
import json
import os
import socket
import struct
import time
from typing import Mapping

from effnet_mm.registry import VISBACKENDS

# Distinguishes event files that one process opens within the same second.
_FILE_COUNTER = itertools.count()


@VISBACKENDS.register_module()
class LocalVisBackend:
    """Writes ``<save_dir>/scalars.json`` (one JSON object per line) and ``<save_dir>/config.py`` like mmengine.

    Example config::

        vis_backends = [dict(type='LocalVisBackend')]

    Args:
        save_dir: directory of the files (the runner passes ``<work_dir>/<timestamp>/vis_data``).
        scalar_save_file: file name of the scalars.
        config_save_file: file name of the dumped config.
    """

    def __init__(self, save_dir: str, scalar_save_file: str = 'scalars.json',
                 config_save_file: str = 'config.py') -> None:
        self.save_dir = save_dir
        os.makedirs(save_dir, exist_ok=True)
        self.scalar_path = os.path.join(save_dir, scalar_save_file)
        self.config_path = os.path.join(save_dir, config_save_file)

    def add_config(self, config_text: str) -> None:
        """Save the (final, merged) config text."""
        with open(self.config_path, 'w', encoding='utf-8') as f:
            f.write(config_text)

    def add_scalars(self, scalars: Mapping[str, object], step: int) -> None:
        """Append one line ``{...scalars, "step": step}``; flushed at once so a killed run keeps its history."""
        record = {k: (v if isinstance(v, (int, str)) else float(v)) for k, v in scalars.items()}
        record['step'] = int(step)
        with open(self.scalar_path, 'a', encoding='utf-8') as f:
            f.write(json.dumps(record) + '\n')


def _crc32c_table() -> tuple:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
        table.append(crc)
    return tuple(table)


_CRC32C_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli polynomial, reflected), the checksum of TFRecord files."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _CRC32C_TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def _masked_crc32c(data: bytes) -> int:
    """TFRecord stores the CRC rotated right by 15 bits plus a constant."""
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        bits = value & 0x7F
        value >>= 7
        if value:
            out.append(bits | 0x80)
        else:
            out.append(bits)
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field (strings, bytes, sub-messages)."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _event(wall_time: float, step: int, *, file_version: str = '', values: bytes = b'') -> bytes:
    """A serialised ``tensorflow.Event``: wall_time (1, double), step (2, int64), file_version (3), summary (5)."""
    message = b'\x09' + struct.pack('<d', wall_time) + b'\x10' + _varint(step & 0xFFFFFFFFFFFFFFFF)
    if file_version:
        message += _field(3, file_version.encode())
    if values:
        message += _field(5, values)
    return message


def _scalar_value(tag: str, value: float) -> bytes:
    """``Summary.Value`` (field 1 of ``Summary``) with tag (1) and simple_value (2, float)."""
    return _field(1, _field(1, tag.encode()) + b'\x15' + struct.pack('<f', value))


def _text_value(tag: str, text: str) -> bytes:
    """``Summary.Value`` for the text plugin: metadata (9) naming it, a scalar DT_STRING tensor (8)."""
    metadata = _field(1, _field(1, b'text'))  # SummaryMetadata.plugin_data.plugin_name
    tensor = b'\x08\x07' + _field(2, _field(2, b'\x08\x01')) + _field(8, text.encode())  # dtype, shape [1], value
    return _field(1, _field(1, tag.encode()) + _field(9, metadata) + _field(8, tensor))


@VISBACKENDS.register_module()
class TensorboardVisBackend:
    """Writes TensorBoard event files (``events.out.tfevents.*``) in ``save_dir``: every scalar as a scalar summary,
    the config as text (mmengine's ``TensorboardVisBackend``).

    The event-file format (TFRecord framing with CRC-32C, ``Event``/``Summary`` protobuf messages) is written
    directly, so no TensorFlow, TensorBoard or tensorboardX is needed to write; ``pip install tensorboard`` and
    ``tensorboard --logdir work_dirs`` to view.  Every event is flushed at once, so a killed run keeps its history.

    Example config::

        vis_backends = [dict(type='LocalVisBackend'), dict(type='TensorboardVisBackend')]

    Args:
        save_dir: directory of the event file (the runner passes ``<work_dir>/<timestamp>/vis_data``).
    """

    def __init__(self, save_dir: str) -> None:
        self.save_dir = save_dir
        os.makedirs(save_dir, exist_ok=True)
        now = time.time()
        name = f'events.out.tfevents.{int(now):010d}.{socket.gethostname()}.{os.getpid()}.{next(_FILE_COUNTER)}'
        self.event_path = os.path.join(save_dir, name)
        self._write(_event(now, 0, file_version='brain.Event:2'))

    def _write(self, event: bytes) -> None:
        header = struct.pack('<Q', len(event))
        record = header + struct.pack('<I', _masked_crc32c(header)) + event + struct.pack('<I', _masked_crc32c(event))
        with open(self.event_path, 'ab') as f:
            f.write(record)

    def add_config(self, config_text: str) -> None:
        """The (final, merged) config as a text summary named ``config``."""
        self._write(_event(time.time(), 0, values=_text_value('config', config_text)))

    def add_scalars(self, scalars: Mapping[str, object], step: int) -> None:
        """One scalar summary per number in ``scalars`` at ``step`` (strings and non-numbers are skipped)."""
        values = b''.join(_scalar_value(tag, float(value)) for tag, value in scalars.items()
                          if isinstance(value, (int, float)) and not isinstance(value, bool))
        if values:
            self._write(_event(time.time(), int(step), values=values))
