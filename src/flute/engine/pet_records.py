"""Wire contract of the PET exchanges: secure-aggregation stages and the enrolment census.

Message types (Flower's "<category>.<action>"), on top of those of `flute.engine.records`:
    query.census          CensusIns -> CensusRes    name and cohort counts (DP-noised in 'secagg_dp')
    train.clipped_gradient TrainIns -> AdditiveRes  summed per-record clipped gradients
    query.secagg_share    KeyDirectory      -> EncryptedShares
    query.secagg_mask     ShareDelivery     -> MaskedInput
    query.secagg_confirm  SurvivorList      -> SurvivorConfirmation
    query.secagg_unmask   UnmaskRequest     -> UnmaskResponse

Under secure aggregation every additive request (query.summary, train.newton, train.local,
train.clipped_gradient, evaluate.scores) carries a `RoundAnnouncement`; the hub answers it with
its signed `KeyAdvertisement` (stage 1) instead of its sums. Secure-aggregation messages travel
as their canonical bytes (`flute.privacy.secagg.messages`) in one config record.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Final

import numpy as np

from flute.engine.flower import ArrayRecord, ConfigRecord, MetricRecord, RecordDict
from flute.engine.records import COUNTS, HUB, RecordFormatError, _array, _array_record, _arrays, _config_record, _int, _metric_record, _scalar
from flute.privacy.secagg import SecAggConfig


class PetMessageKind(str, Enum):
    """Message types of the PET exchanges; values are Flower message types."""

    CENSUS = "query.census"
    CLIPPED_GRADIENT = "train.clipped_gradient"
    SECAGG_SHARE = "query.secagg_share"
    SECAGG_MASK = "query.secagg_mask"
    SECAGG_CONFIRM = "query.secagg_confirm"
    SECAGG_UNMASK = "query.secagg_unmask"


RUN: Final = "flute.run"
SECAGG_ROUND: Final = "flute.secagg-round"
SECAGG_MESSAGE: Final = "flute.secagg-message"
ADDITIVE: Final = "flute.additive"


@dataclass(frozen=True)
class RoundAnnouncement:
    """A secure-aggregation round: its public parameters and which hub name has which hub id
    (hub id i is `members[i]`). Hubs check their own name against it and take the peers'
    identity keys from their OWN enrolment list, never from this message."""

    config: SecAggConfig
    members: tuple[str, ...]
    run_nonce: str

    def __post_init__(self) -> None:
        if not self.run_nonce or not self.config.round_id.startswith(f"{self.run_nonce}/"):
            raise RecordFormatError(f"{SECAGG_ROUND}: round id {self.config.round_id!r} is not bound to run {self.run_nonce!r}")
        if self.config.hub_ids != tuple(range(len(self.members))):
            raise RecordFormatError(f"{SECAGG_ROUND}: hub ids {list(self.config.hub_ids)} must be 0..{len(self.members) - 1}, one per member")

    def hub_id(self, name: str) -> int:
        if name not in self.members:
            raise RecordFormatError(f"{SECAGG_ROUND}: hub {name!r} is not a member of round {self.config.round_id!r} ({list(self.members)})")
        return self.members.index(name)

    def to_config(self) -> ConfigRecord:
        return ConfigRecord({"config": self.config.to_bytes(), "members": list(self.members), "run": self.run_nonce})

    @classmethod
    def from_record(cls, record: RecordDict) -> RoundAnnouncement | None:
        """The announcement, or None for a request sent in the clear."""
        if SECAGG_ROUND not in record.config_records:
            return None
        config = record.config_records[SECAGG_ROUND]
        members = config.get("members")
        if not (isinstance(members, list) and all(isinstance(m, str) for m in members)):
            raise RecordFormatError(f"{SECAGG_ROUND}.members: expected a list of hub names, got {members!r}")
        run = str(_scalar(config, SECAGG_ROUND, "run", str))
        return cls(SecAggConfig.from_bytes(bytes(_scalar(config, SECAGG_ROUND, "config", bytes))), tuple(members), run)  # type: ignore[arg-type]

    def attach(self, content: RecordDict) -> RecordDict:
        """`content` with this announcement added (a new RecordDict; the original is shared)."""
        record = RecordDict(dict(content.items()))
        record[SECAGG_ROUND] = self.to_config()
        return record


@dataclass(frozen=True)
class SecAggMessage:
    """One secure-aggregation protocol message (its canonical bytes) for a round."""

    round_id: str
    payload: bytes

    def to_record(self) -> RecordDict:
        return RecordDict({SECAGG_MESSAGE: ConfigRecord({"round-id": self.round_id, "payload": self.payload})})

    @classmethod
    def from_record(cls, record: RecordDict) -> SecAggMessage:
        config = _config_record(record, SECAGG_MESSAGE)
        return cls(str(_scalar(config, SECAGG_MESSAGE, "round-id", str)), bytes(_scalar(config, SECAGG_MESSAGE, "payload", bytes)))  # type: ignore[arg-type]


@dataclass(frozen=True)
class RunTag:
    """The coordinator's random id of this run: binds round ids and a hub's privacy-budget
    reservation to one run of the study."""

    run_nonce: str

    def to_config(self) -> ConfigRecord:
        return ConfigRecord({"nonce": self.run_nonce})

    @classmethod
    def from_record(cls, record: RecordDict) -> RunTag:
        nonce = str(_scalar(_config_record(record, RUN), RUN, "nonce", str))
        if not nonce:
            raise RecordFormatError(f"{RUN}.nonce must not be empty")
        return cls(nonce)


@dataclass(frozen=True)
class CensusIns:
    run: RunTag

    def to_record(self) -> RecordDict:
        return RecordDict({RUN: self.run.to_config()})

    @classmethod
    def from_record(cls, record: RecordDict) -> CensusIns:
        return cls(RunTag.from_record(record))


@dataclass(frozen=True)
class CensusRes:
    """A hub's name and cohort counts (in 'secagg_dp': noisy, rounded, clamped at 0)."""

    hub: str
    n_rows: int
    n_positive: int
    n_incomplete: int

    def to_record(self) -> RecordDict:
        counts = MetricRecord({"n-rows": self.n_rows, "n-positive": self.n_positive, "n-incomplete": self.n_incomplete})
        return RecordDict({HUB: ConfigRecord({"name": self.hub}), COUNTS: counts})

    @classmethod
    def from_record(cls, record: RecordDict) -> CensusRes:
        counts = _metric_record(record, COUNTS)
        hub = str(_scalar(_config_record(record, HUB), HUB, "name", str))
        return cls(hub, _int(counts, COUNTS, "n-rows"), _int(counts, COUNTS, "n-positive"), _int(counts, COUNTS, "n-incomplete"))


@dataclass(frozen=True)
class AdditiveRes:
    """A hub's flat additive vector in the clear (plain-mode answer of train.clipped_gradient)."""

    vector: np.ndarray

    def to_record(self) -> RecordDict:
        return RecordDict({ADDITIVE: _arrays(vector=self.vector)})

    @classmethod
    def from_record(cls, record: RecordDict) -> AdditiveRes:
        return cls(_array(_array_record(record, ADDITIVE), ADDITIVE, "vector", dtype=np.float64, ndim=1))


def is_array_free(record: RecordDict) -> bool:
    """True when a record carries no array record (what a secure-aggregation answer must be)."""
    return not any(isinstance(value, ArrayRecord) for value in record.values())
