"""Typed protocol messages and their canonical byte form.

Each message is a frozen dataclass with `to_bytes()` / `from_bytes()` so the engine can
carry it as one bytes value of a Flower record (MaskedInput.values is also a plain
uint64 ndarray for array transport). Direction and stage, in order:

    hub -> server  KeyAdvertisement       advertise_keys
    server -> hub  KeyDirectory           (broadcast of all valid advertisements)
    hub -> server  EncryptedShares        share_keys
    server -> hub  ShareDelivery          (the ciphertexts addressed to that hub)
    hub -> server  MaskedInput            masked_input
    server -> hub  SurvivorList           (consistency check request)
    hub -> server  SurvivorConfirmation   confirm_survivors
    server -> hub  UnmaskRequest          (survivors, dropped, confirmations)
    hub -> server  UnmaskResponse         unmask
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar, Self

import numpy as np
import numpy.typing as npt

from flute.privacy.secagg.errors import MalformedMessageError
from flute.privacy.secagg.keys import PROTOCOL_LABEL
from flute.privacy.secagg.wire import Reader, Writer, read_id_map, write_id_map


class _WireMessage(ABC):
    """Shared to_bytes/from_bytes around each message's field writer and reader."""

    TAG: ClassVar[bytes]

    def to_bytes(self) -> bytes:
        writer = Writer(self.TAG)
        self._write(writer)
        return writer.to_bytes()

    @classmethod
    def from_bytes(cls, data: bytes) -> Self:
        reader = Reader(data, cls.TAG)
        message = cls._read(reader)
        reader.finish()
        return message

    @abstractmethod
    def _write(self, writer: Writer) -> None: ...

    @classmethod
    @abstractmethod
    def _read(cls, reader: Reader) -> Self: ...


@dataclass(frozen=True)
class KeyAdvertisement(_WireMessage):
    """A hub's two round public keys, signed with its enrolled Ed25519 identity."""

    TAG: ClassVar[bytes] = b"secagg.advertise"
    hub_id: int
    round_id: str
    cipher_public: bytes
    mask_public: bytes
    signature: bytes

    def signed_payload(self) -> bytes:
        return advertisement_payload(self.hub_id, self.round_id, self.cipher_public, self.mask_public)

    def _write(self, writer: Writer) -> None:
        writer.u64(self.hub_id).text(self.round_id).blob(self.cipher_public).blob(self.mask_public)
        writer.blob(self.signature)

    @classmethod
    def _read(cls, reader: Reader) -> Self:
        return cls(reader.u64(), reader.text(), reader.blob(), reader.blob(), reader.blob())


def advertisement_payload(hub_id: int, round_id: str, cipher_public: bytes, mask_public: bytes) -> bytes:
    """What a hub signs: its id, the round and both keys, under a protocol label."""
    writer = Writer(f"{PROTOCOL_LABEL}/advertise".encode())
    return writer.u64(hub_id).text(round_id).blob(cipher_public).blob(mask_public).to_bytes()


@dataclass(frozen=True)
class KeyDirectory(_WireMessage):
    """All accepted advertisements, broadcast by the server to every advertising hub."""

    TAG: ClassVar[bytes] = b"secagg.directory"
    round_id: str
    advertisements: tuple[KeyAdvertisement, ...]

    def _write(self, writer: Writer) -> None:
        writer.text(self.round_id).u64(len(self.advertisements))
        for advertisement in self.advertisements:
            writer.blob(advertisement.to_bytes())

    @classmethod
    def _read(cls, reader: Reader) -> Self:
        round_id = reader.text()
        count = reader.u64()
        return cls(round_id, tuple(KeyAdvertisement.from_bytes(reader.blob()) for _ in range(count)))


@dataclass(frozen=True)
class EncryptedShares(_WireMessage):
    """One hub's shares of its secrets, AES-GCM-encrypted per recipient hub."""

    TAG: ClassVar[bytes] = b"secagg.shares"
    sender: int
    round_id: str
    ciphertexts: dict[int, bytes]

    def _write(self, writer: Writer) -> None:
        writer.u64(self.sender).text(self.round_id)
        write_id_map(writer, self.ciphertexts)

    @classmethod
    def _read(cls, reader: Reader) -> Self:
        return cls(reader.u64(), reader.text(), read_id_map(reader))


@dataclass(frozen=True)
class ShareDelivery(_WireMessage):
    """The ciphertexts addressed to one hub, keyed by sender, relayed unread by the server."""

    TAG: ClassVar[bytes] = b"secagg.delivery"
    recipient: int
    round_id: str
    ciphertexts: dict[int, bytes]

    def _write(self, writer: Writer) -> None:
        writer.u64(self.recipient).text(self.round_id)
        write_id_map(writer, self.ciphertexts)

    @classmethod
    def _read(cls, reader: Reader) -> Self:
        return cls(reader.u64(), reader.text(), read_id_map(reader))


@dataclass(frozen=True)
class MaskedInput(_WireMessage):
    """A hub's encoded input plus its masks, in Z_(2**64); uniform to anyone without the seeds."""

    TAG: ClassVar[bytes] = b"secagg.masked"
    hub_id: int
    round_id: str
    values: npt.NDArray[np.uint64]

    def _write(self, writer: Writer) -> None:
        words = np.ascontiguousarray(self.values, dtype="<u8")
        writer.u64(self.hub_id).text(self.round_id).blob(memoryview(words).cast("B"))

    @classmethod
    def _read(cls, reader: Reader) -> Self:
        hub_id, round_id, raw = reader.u64(), reader.text(), reader.blob_view()  # the vector stays in the message bytes
        if len(raw) % 8:
            raise MalformedMessageError(f"masked input of hub {hub_id} has {len(raw)} bytes, not whole uint64 words")
        return cls(hub_id, round_id, np.frombuffer(raw, dtype="<u8").astype(np.uint64, copy=False))


@dataclass(frozen=True)
class SurvivorList(_WireMessage):
    """The hubs whose masked inputs the server holds; each survivor signs this set."""

    TAG: ClassVar[bytes] = b"secagg.survivors"
    round_id: str
    survivors: tuple[int, ...]

    def _write(self, writer: Writer) -> None:
        writer.text(self.round_id).u64_list(self.survivors)

    @classmethod
    def _read(cls, reader: Reader) -> Self:
        return cls(reader.text(), reader.u64_list())


def survivors_payload(round_id: str, survivors: tuple[int, ...]) -> bytes:
    """What a hub signs in the consistency check: the round and the sorted survivor set."""
    return Writer(f"{PROTOCOL_LABEL}/survivors".encode()).text(round_id).u64_list(sorted(survivors)).to_bytes()


@dataclass(frozen=True)
class SurvivorConfirmation(_WireMessage):
    """A hub's Ed25519 signature over (round, survivor set)."""

    TAG: ClassVar[bytes] = b"secagg.confirm"
    hub_id: int
    round_id: str
    signature: bytes

    def _write(self, writer: Writer) -> None:
        writer.u64(self.hub_id).text(self.round_id).blob(self.signature)

    @classmethod
    def _read(cls, reader: Reader) -> Self:
        return cls(reader.u64(), reader.text(), reader.blob())


@dataclass(frozen=True)
class UnmaskRequest(_WireMessage):
    """Which hubs' mask seeds (survivors) and keys (dropped) to reveal shares of.

    Carries at least t survivor signatures over the same set, so every honest hub can
    check it is told the same story as the others before revealing anything.
    """

    TAG: ClassVar[bytes] = b"secagg.unmask?"
    round_id: str
    survivors: tuple[int, ...]
    dropped: tuple[int, ...]
    confirmations: tuple[SurvivorConfirmation, ...]

    def _write(self, writer: Writer) -> None:
        writer.text(self.round_id).u64_list(self.survivors).u64_list(self.dropped).u64(len(self.confirmations))
        for confirmation in self.confirmations:
            writer.blob(confirmation.to_bytes())

    @classmethod
    def _read(cls, reader: Reader) -> Self:
        round_id, survivors, dropped = reader.text(), reader.u64_list(), reader.u64_list()
        count = reader.u64()
        confirmations = tuple(SurvivorConfirmation.from_bytes(reader.blob()) for _ in range(count))
        return cls(round_id, survivors, dropped, confirmations)


@dataclass(frozen=True)
class UnmaskResponse(_WireMessage):
    """A hub's Shamir shares: of survivors' mask seeds and of dropped hubs' mask keys."""

    TAG: ClassVar[bytes] = b"secagg.unmask"
    hub_id: int
    round_id: str
    seed_shares: dict[int, bytes]
    key_shares: dict[int, bytes]

    def _write(self, writer: Writer) -> None:
        writer.u64(self.hub_id).text(self.round_id)
        write_id_map(writer, self.seed_shares)
        write_id_map(writer, self.key_shares)

    @classmethod
    def _read(cls, reader: Reader) -> Self:
        return cls(reader.u64(), reader.text(), read_id_map(reader), read_id_map(reader))
