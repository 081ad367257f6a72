"""Read what W&B wrote to disk in offline mode: the records of a ``run-<id>.wandb`` file.

The file is a 7-byte W&B header followed by LevelDB-log framed records (32 KiB blocks; each chunk
has a 4-byte CRC, 2-byte length and 1-byte type: 1 full, 2 first, 3 middle, 4 last), each record a
``wandb_internal_pb2.Record`` protobuf. wandb 0.31 no longer ships a Python reader for it.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

from wandb.proto import wandb_internal_pb2

HEADER = 7
BLOCK = 32768
CHUNK_HEADER = 7


def records(path: Path):
    data = Path(path).read_bytes()
    if not data:  # created, not yet written
        return
    assert data[:4] == b":W&B", f"{path} is not a W&B datastore"
    pos, pending = HEADER, b""
    while pos + CHUNK_HEADER <= len(data):
        left_in_block = BLOCK - pos % BLOCK
        if left_in_block < CHUNK_HEADER:  # block trailer padding
            pos += left_in_block
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + CHUNK_HEADER])
        if pos + CHUNK_HEADER + length > len(data):  # a chunk still being written
            return
        chunk = data[pos + CHUNK_HEADER : pos + CHUNK_HEADER + length]
        pos += CHUNK_HEADER + length
        if kind == 0 and length == 0:
            continue
        pending = chunk if kind in (1, 2) else pending + chunk
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            yield record
            pending = b""


def history(path: Path) -> list[dict]:
    """Every logged row as a dict of key -> decoded JSON value."""
    rows = []
    for record in records(path):
        if record.WhichOneof("record_type") == "history":
            rows.append({item.key or "/".join(item.nested_key): json.loads(item.value_json)
                         for item in record.history.item})
    return rows


def config(path: Path) -> dict:
    """The run's config as W&B recorded it."""
    merged = {}
    for record in records(path):
        kind = record.WhichOneof("record_type")
        updates = record.config.update if kind == "config" else record.run.config.update if kind == "run" else []
        for item in updates:
            merged[item.key or "/".join(item.nested_key)] = json.loads(item.value_json)
    return merged
