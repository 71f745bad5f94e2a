"""Canonical, strict binary encoding for protocol messages and signed payloads.

Signatures need one byte string per logical value (no JSON key-order or float
ambiguity), and the engine needs plain bytes it can put into a Flower record. The
format is deliberately tiny: unsigned 64-bit integers, length-prefixed byte strings
(uint32 big-endian length) and nothing else; a message is a tag followed by its
fields in a fixed order. Readers reject trailing bytes and truncation.
"""

from __future__ import annotations

import struct

from flute.privacy.secagg.errors import MalformedMessageError

_U64 = struct.Struct(">Q")
_U32 = struct.Struct(">I")
_U64_MAX = 2**64 - 1


class Writer:
    """Append-only builder of the canonical encoding."""

    def __init__(self, tag: bytes) -> None:
        self._parts: list[bytes] = []
        self.blob(tag)

    def u64(self, value: int) -> Writer:
        if not 0 <= value <= _U64_MAX:
            raise MalformedMessageError(f"integer {value} does not fit in an unsigned 64-bit field")
        self._parts.append(_U64.pack(value))
        return self

    def blob(self, value: bytes | memoryview) -> Writer:
        """A length-prefixed byte string. A memoryview (of bytes, format 'B') is joined without an
        intermediate copy - for megabyte vectors; it must not change before `to_bytes`."""
        if isinstance(value, memoryview) and value.format != "B":
            raise MalformedMessageError(f"blob views must be of bytes (format 'B'), got format {value.format!r}")
        self._parts.append(_U32.pack(len(value)))
        self._parts.append(value if isinstance(value, memoryview) else bytes(value))
        return self

    def text(self, value: str) -> Writer:
        return self.blob(value.encode("utf-8"))

    def u64_list(self, values: list[int] | tuple[int, ...]) -> Writer:
        self.u64(len(values))
        for value in values:
            self.u64(value)
        return self

    def to_bytes(self) -> bytes:
        return b"".join(self._parts)


class Reader:
    """Sequential decoder matching `Writer`; every read checks bounds."""

    def __init__(self, data: bytes, tag: bytes) -> None:
        self._data = memoryview(data).toreadonly()
        self._offset = 0
        self._tag = tag
        found = self.blob()
        if found != tag:
            raise MalformedMessageError(f"expected a {self._tag_name()!r} message, got tag {found[:32]!r}")

    def _take(self, size: int) -> memoryview:
        end = self._offset + size
        if end > len(self._data):
            raise MalformedMessageError(
                f"{self._tag_name()} message truncated at byte {self._offset} "
                f"(needs {size} more bytes, {len(self._data) - self._offset} left)"
            )
        chunk = self._data[self._offset : end]
        self._offset = end
        return chunk

    def _tag_name(self) -> str:
        return self._tag.decode(errors="replace")

    def u64(self) -> int:
        return int(_U64.unpack(self._take(_U64.size))[0])

    def blob(self) -> bytes:
        return bytes(self.blob_view())

    def blob_view(self) -> memoryview:
        """The next byte string as a read-only view into the message (no copy; for large vectors)."""
        (size,) = _U32.unpack(self._take(_U32.size))
        return self._take(size)

    def text(self) -> str:
        try:
            return self.blob().decode("utf-8")
        except UnicodeDecodeError as exc:
            raise MalformedMessageError(f"{self._tag_name()} message holds invalid UTF-8") from exc

    def u64_list(self) -> tuple[int, ...]:
        count = self.u64()
        if count * _U64.size > len(self._data) - self._offset:
            raise MalformedMessageError(f"{self._tag_name()} message declares {count} ids but is too short")
        return tuple(self.u64() for _ in range(count))

    def finish(self) -> None:
        """Reject trailing bytes, which would otherwise be silently ignored."""
        if self._offset != len(self._data):
            raise MalformedMessageError(
                f"{self._tag_name()} message has {len(self._data) - self._offset} unexpected trailing bytes"
            )


def write_id_map(writer: Writer, entries: dict[int, bytes]) -> None:
    """Write a hub-id -> bytes mapping in ascending id order (canonical)."""
    writer.u64(len(entries))
    for hub_id in sorted(entries):
        writer.u64(hub_id).blob(entries[hub_id])


def read_id_map(reader: Reader) -> dict[int, bytes]:
    count = reader.u64()
    entries: dict[int, bytes] = {}
    for _ in range(count):
        hub_id = reader.u64()
        if hub_id in entries:
            raise MalformedMessageError(f"hub id {hub_id} appears twice in one message")
        entries[hub_id] = reader.blob()
    return entries
