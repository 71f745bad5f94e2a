"""Wire contract of federated descriptive statistics (F-PIL-16/18, NF-PIL-5, F-SRS-4).

The request travels in the run config (key `statistics-request`, JSON), so every hub validates it
itself, as a study spec; the message carries only what changes per run.

Message type:
    query.statistics   StatisticsIns -> StatisticsRes

`StatisticsIns` carries the key holder's PUBLIC CKKS context when the request's PET is 'he' (empty
otherwise). `StatisticsRes` carries, by PET:
    none  the hub's exact sums with small cells suppressed (zeroed + flagged);
    dp    the hub's OpenDP release, small cells flagged (noisy values kept), and the DpCost charged;
    he    the hub's exact sums encrypted under the public context (suppression happens on the
          decrypted pooled sums, against the strictest policy of the hubs that answered).
Every reply states the hub's minimum cell size.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Final, get_args

import numpy as np

from flute.engine.flower import Array, ArrayRecord, ConfigRecord, RecordDict
from flute.engine.records import HUB, RecordFormatError, _array_record, _config_record, _float, _int, _scalar
from flute.engine.spec import StatisticsPet
from flute.engine.stats_variables import statistics_query
from flute.privacy.dp.cost import DpCost
from flute.privacy.dp_stats import STATISTIC_KINDS, StatisticKind, StatisticsQuery, StatisticsQueryError

STATISTICS_MESSAGE: Final = "query.statistics"
REQUEST_KEY: Final = "statistics-request"

STATISTICS_PETS: tuple[str, ...] = get_args(StatisticsPet)

HE_CONTEXT: Final = "flute.he-context"
STATISTICS: Final = "flute.statistics"
DP_COST: Final = "flute.dp-cost"


@dataclass(frozen=True)
class StatisticsRequest:
    """A researcher's statistics query: which study (whose budget pays at each hub; the ledger's
    dataset is the hub's name, one cohort dataset per hub), which variables, which statistic,
    which PET (F-SRS-4), and for 'dp' the epsilon each hub spends."""

    study: str
    variables: tuple[str, ...]
    kind: StatisticKind
    pet: StatisticsPet = "dp"
    epsilon: float | None = None
    included_only: bool = True
    min_hubs: int = 1

    def __post_init__(self) -> None:
        problems = []
        if not self.study.strip():
            problems.append("name the study")
        if self.pet not in STATISTICS_PETS:
            problems.append(f"pet {self.pet!r} is not one of {list(STATISTICS_PETS)}")
        if self.kind not in STATISTIC_KINDS:
            problems.append(f"kind {self.kind!r} is not one of {list(STATISTIC_KINDS)}")
        if self.pet == "dp" and not (self.epsilon is not None and math.isfinite(self.epsilon) and self.epsilon > 0):
            problems.append(f"pet 'dp' needs an epsilon > 0 (got {self.epsilon!r})")
        if self.pet != "dp" and self.epsilon is not None:
            problems.append(f"epsilon is only used with pet 'dp' (pet is {self.pet!r}); leave it out")
        if self.min_hubs < 1:
            problems.append(f"min_hubs must be >= 1, got {self.min_hubs}")
        if problems:
            raise StatisticsQueryError("statistics request refused: " + "; ".join(problems))
        self.query()  # unknown variables are refused here, with the known ones

    def query(self) -> StatisticsQuery:
        return statistics_query(list(self.variables), self.kind)

    def to_json(self) -> str:
        return json.dumps({**self.__dict__, "variables": list(self.variables)}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> StatisticsRequest:
        try:
            data = json.loads(text)
            return cls(**{**data, "variables": tuple(data["variables"])})
        except (json.JSONDecodeError, TypeError, KeyError) as exc:
            raise StatisticsQueryError(f"run config {REQUEST_KEY!r} is not a statistics request ({exc})") from exc


@dataclass(frozen=True)
class StatisticsIns:
    """The key holder's public CKKS context (b'' unless the PET is 'he')."""

    public_context: bytes = b""

    def to_record(self) -> RecordDict:
        return RecordDict({HE_CONTEXT: ConfigRecord({"public-context": self.public_context})})

    @classmethod
    def from_record(cls, record: RecordDict) -> StatisticsIns:
        return cls(bytes(_scalar(_config_record(record, HE_CONTEXT), HE_CONTEXT, "public-context", bytes)))  # type: ignore[arg-type]


@dataclass(frozen=True)
class StatisticsRes:
    """One hub's answer. Exactly one of (`values` with `suppressed`) and `ciphertext` is set;
    `cost` is set for DP releases."""

    hub: str
    min_cell_size: int
    values: np.ndarray | None = None
    suppressed: np.ndarray | None = None
    ciphertext: bytes = b""
    cost: DpCost | None = None

    def __post_init__(self) -> None:
        if (self.values is None) == (not self.ciphertext) or (self.values is None) != (self.suppressed is None):
            raise RecordFormatError(f"{STATISTICS}: a reply holds either values with suppression flags or a ciphertext")

    def to_record(self) -> RecordDict:
        record = RecordDict(
            {HUB: ConfigRecord({"name": self.hub, "min-cell-size": self.min_cell_size, "ciphertext": self.ciphertext})}
        )
        if self.values is not None and self.suppressed is not None:
            record[STATISTICS] = ArrayRecord({"values": Array(self.values.astype(np.float64)), "suppressed": Array(self.suppressed.astype(bool))})
        if self.cost is not None:
            c = self.cost
            record[DP_COST] = ConfigRecord({"epsilon": c.epsilon, "delta": c.delta, "unit": c.unit, "mechanism": c.mechanism})
        return record

    @classmethod
    def from_record(cls, record: RecordDict, size: int) -> StatisticsRes:
        """`size`: the length of the request's statistics vector."""
        hub = _config_record(record, HUB)
        values = suppressed = None
        if STATISTICS in record.array_records:
            arrays = _array_record(record, STATISTICS)
            values, suppressed = (arrays[key].numpy() if key in arrays else None for key in ("values", "suppressed"))
            if values is None or suppressed is None or values.shape != (size,) or suppressed.shape != (size,) or suppressed.dtype != np.bool_:
                raise RecordFormatError(f"{STATISTICS}: expected {size} float values and {size} boolean flags")
            if values.dtype != np.float64 or not np.all(np.isfinite(values)):
                raise RecordFormatError(f"{STATISTICS}.values: expected finite float64 values")
        cost = None
        if DP_COST in record.config_records:
            c = _config_record(record, DP_COST)
            unit = str(_scalar(c, DP_COST, "unit", str))
            try:
                cost = DpCost(_float(c, DP_COST, "epsilon"), _float(c, DP_COST, "delta"), unit, str(_scalar(c, DP_COST, "mechanism", str)))  # type: ignore[arg-type]
            except ValueError as exc:
                raise RecordFormatError(f"{DP_COST}: {exc}") from exc
        return cls(
            hub=str(_scalar(hub, HUB, "name", str)),
            min_cell_size=_int(hub, HUB, "min-cell-size"),
            values=values,
            suppressed=suppressed,
            ciphertext=bytes(_scalar(hub, HUB, "ciphertext", bytes)),  # type: ignore[arg-type]
            cost=cost,
        )
