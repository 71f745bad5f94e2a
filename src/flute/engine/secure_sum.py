"""The coordinator's side of secure aggregation over the Message API (URS-2, F-SRS-10).

`SecureSummer.total` turns one additive request into a secure sum: the request goes out with a
`RoundAnnouncement`, the hubs answer with signed key advertisements, and the coordinator drives a
`ServerSession` through stages 2-5 (`query.secagg_*` messages). It only ever holds masked
vectors and the final SUM over the contributing hubs; hubs that fail or stay silent mid-round
are dropped as the protocol allows while at least the threshold t remain.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import TypeVar

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from flute.engine.flower import RecordDict
from flute.engine.pet_records import PetMessageKind, RoundAnnouncement, SecAggMessage
from flute.engine.records import RecordFormatError
from flute.engine.spec import StudySpec
from flute.privacy.secagg import (
    EncryptedShares,
    FixedPoint,
    KeyAdvertisement,
    MalformedMessageError,
    MaskedInput,
    SecAggConfig,
    SecAggError,
    ServerSession,
    SurvivorConfirmation,
    UnmaskResponse,
)

LOGGER = logging.getLogger(__name__)

Ask = Callable[[Enum, Mapping[int, RecordDict], str, int], dict[int, RecordDict]]
_Message = TypeVar("_Message", KeyAdvertisement, EncryptedShares, MaskedInput, SurvivorConfirmation, UnmaskResponse)


class SecureSumFailed(RuntimeError):
    """The round could not produce a sum (too few hubs, a protocol fault); nothing was revealed."""


@dataclass(frozen=True)
class SecureSum:
    total: np.ndarray
    contributors: tuple[str, ...]


@dataclass
class SecureSummer:
    """Secure sums over the live hubs of one study run."""

    spec: StudySpec
    run_nonce: str
    enrolled: Mapping[str, Ed25519PublicKey]
    ask: Ask

    def total(
        self, kind: Enum, content: RecordDict, nodes: Mapping[int, str], group: str, *, length: int, encoding: FixedPoint
    ) -> SecureSum:
        """The sum of the vectors the hubs `nodes` (node id -> name, in name order) compute for
        `content`. Raises SecureSumFailed if the round cannot complete."""
        options = self.spec.pets.secure_aggregation
        if options is None:
            raise SecureSumFailed(f"{group}: study {self.spec.study_id} has pets.mode {self.spec.pets.mode!r}; secure sums need 'secagg' or 'secagg_dp'")
        members = tuple(nodes.values())
        node_of = {index: node for index, node in enumerate(nodes)}
        missing = [name for name in members if name not in self.enrolled]
        if missing:
            raise SecureSumFailed(f"{group}: hubs {missing} have no enrolled identity key; enrol them before a secure study")
        holders = len(members) if options.neighbours is None else min(len(members), options.neighbours + 1)
        threshold = options.threshold or max(2, holders // 2 + 1)  # a majority of each hub's share holders
        try:
            config = SecAggConfig(f"{self.run_nonce}/{self.spec.study_id}/{group}", tuple(range(len(members))), length, threshold, encoding, options.neighbours)
            server = ServerSession(config, {index: self.enrolled[name] for index, name in enumerate(members)})
            announcement = RoundAnnouncement(config, members, self.run_nonce)
            request = announcement.attach(content)
            answers = self.ask(kind, {node: request for node in nodes}, group, threshold)
            directory = server.collect_keys(self._parse(answers, config, KeyAdvertisement, node_of))
            sharers = [node_of[a.hub_id] for a in directory.advertisements]
            answers = self._stage(PetMessageKind.SECAGG_SHARE, _broadcast(directory.to_bytes(), sharers), config, group, threshold)
            deliveries = server.route_shares(self._parse(answers, config, EncryptedShares, node_of))
            payloads = {node_of[hub]: delivery.to_bytes() for hub, delivery in deliveries.items()}
            answers = self._stage(PetMessageKind.SECAGG_MASK, payloads, config, group, threshold)
            survivors = server.collect_masked(self._parse(answers, config, MaskedInput, node_of))
            payloads = _broadcast(survivors.to_bytes(), [node_of[hub] for hub in survivors.survivors])
            answers = self._stage(PetMessageKind.SECAGG_CONFIRM, payloads, config, group, threshold)
            unmask = server.collect_confirmations(self._parse(answers, config, SurvivorConfirmation, node_of))
            payloads = _broadcast(unmask.to_bytes(), [node_of[c.hub_id] for c in unmask.confirmations])
            answers = self._stage(PetMessageKind.SECAGG_UNMASK, payloads, config, group, threshold)
            result = server.collect_unmask(self._parse(answers, config, UnmaskResponse, node_of))
        except SecAggError as exc:
            raise SecureSumFailed(f"{group}: secure aggregation failed: {exc}") from exc
        for hub, reason in server.rejected.items():
            LOGGER.warning("%s: secure aggregation ignored a message of hub %s: %s", group, members[hub], reason)
        return SecureSum(result.total, tuple(members[hub] for hub in result.contributors))

    def _stage(self, kind: PetMessageKind, payloads: Mapping[int, bytes], config: SecAggConfig, group: str, threshold: int) -> dict[int, RecordDict]:
        records = {node: SecAggMessage(config.round_id, payload).to_record() for node, payload in payloads.items()}
        return self.ask(kind, records, f"{group}/{kind.value.removeprefix('query.')}", threshold)

    @staticmethod
    def _parse(answers: Mapping[int, RecordDict], config: SecAggConfig, message_type: type[_Message], node_of: Mapping[int, int]) -> Iterable[_Message]:
        """Decoded protocol messages; a hub whose answer does not decode, or that claims another
        hub's id, is left out of the round (the protocol then treats it as dropped)."""
        sender = {node: hub for hub, node in node_of.items()}
        for node, record in answers.items():
            try:
                message = SecAggMessage.from_record(record)
                if message.round_id != config.round_id:
                    raise RecordFormatError(f"answer for round {message.round_id!r}")
                decoded = message_type.from_bytes(message.payload)
            except (RecordFormatError, MalformedMessageError) as exc:
                LOGGER.warning("%s: undecodable %s from node %d: %s", config.round_id, message_type.__name__, node, exc)
                continue
            claimed = getattr(decoded, "hub_id", getattr(decoded, "sender", None))
            if claimed != sender[node]:
                LOGGER.warning("%s: node %d sent a %s claiming hub id %s", config.round_id, node, message_type.__name__, claimed)
                continue
            yield decoded


def _broadcast(payload: bytes, nodes: Iterable[int]) -> dict[int, bytes]:
    """The same message for every node, encoded once: at 100 hubs the key directory is 600
    fields, and encoding it per recipient repeated that 100 times."""
    return dict.fromkeys(nodes, payload)
