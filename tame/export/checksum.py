"""A SHA-256 of an ONNX file, recorded in the file itself (metadata ``checksum``) and verified when it is opened.

ONNX Runtime runs a file with flipped bytes in its weights and gives different maps without a word. The digest
covers every top-level field of the serialized ``ModelProto`` (graph, weights, opsets, metadata) except the one
metadata entry that holds it, so it is read straight from the file's protobuf wire format: no ``onnx`` package is
needed to verify, and the same bytes always give the same digest.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

CHECKSUM_KEY = "checksum"
_METADATA_FIELD = 14  # ModelProto.metadata_props: repeated StringStringEntryProto {key = 1, value = 2}


def onnx_checksum(data: bytes) -> tuple[str, str | None]:
    """(the digest of ``data``, the digest the file records or None); a ValueError for bytes that are not protobuf."""
    digest, recorded = hashlib.sha256(), None
    view = memoryview(data)
    for number, raw, payload in _fields(view):
        if number == _METADATA_FIELD:
            entry = {key: bytes(value) for key, _, value in _fields(payload)}
            if entry.get(1) == CHECKSUM_KEY.encode():
                recorded = entry.get(2, b"").decode("ascii", "replace")
                continue
        digest.update(raw)
    return f"sha256:{digest.hexdigest()}", recorded


def _fields(data: memoryview) -> Iterator[tuple[int, memoryview, memoryview]]:
    """(field number, the field's bytes with its key, its payload) of each top-level field of a protobuf message."""
    pos = 0
    while pos < len(data):
        start = pos
        key, pos = _varint(data, pos)
        wire, payload_start = key & 7, pos
        if wire == 0:
            _, pos = _varint(data, pos)
        elif wire in (1, 5):
            pos += 8 if wire == 1 else 4
        elif wire == 2:
            length, payload_start = _varint(data, pos)
            pos = payload_start + length
        else:
            raise ValueError(f"unknown wire type {wire} at byte {start}")
        if pos > len(data):
            raise ValueError(f"a field at byte {start} runs past the end of the file")
        yield key >> 3, data[start:pos], data[payload_start:pos]


def _varint(data: memoryview, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise ValueError(f"a broken number at byte {pos}")
        byte = data[pos]
        value |= (byte & 0x7F) << shift
        pos, shift = pos + 1, shift + 7
        if not byte & 0x80:
            return value, pos
