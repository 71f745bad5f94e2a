"""Typed payloads of every message between coordinator and hubs, and their Flower records.

Handlers and workflows only ever see these dataclasses; the record names and keys below are the
whole wire contract and appear nowhere else. A payload that lacks a key, or holds a value of the
wrong type or shape, raises `RecordFormatError` naming the record and key - a malformed message is
refused, never half-read.

Message types (Flower's "<category>.<action>"):
    query.summary      StatsIns  -> StatsRes       column sums and outcome counts for preprocessing
    train.newton       TrainIns  -> NewtonRes      gradient / Hessian sums (federated Newton)
    train.local        TrainIns  -> FitRes         locally trained weights (FedAvg/FedProx/FedAdam)
    evaluate.scores    EvalIns   -> EvalRes        histograms of predicted risk (flute.evaluate)
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Final, Literal, Mapping

import numpy as np

from flute.engine.flower import Array, ArrayRecord, ConfigRecord, MetricRecord, RecordDict
from flute.evaluate.grid import ScoreGrid
from flute.evaluate.summary import ScoreSummary
from flute.learn.logistic import LocalFit, NewtonSums
from flute.learn.preprocess import ColumnSums


class MessageKind(str, Enum):
    """The exchanges of a study; values are Flower message types (the tree, forest, boosting and
    SVM payloads are in `flute.engine.tree_records`)."""

    SUMMARY = "query.summary"
    NEWTON = "train.newton"
    LOCAL_FIT = "train.local"
    SCORES = "evaluate.scores"
    BINS = "query.bins"
    HISTOGRAMS = "train.histograms"
    SVM_FIT = "train.svm"
    MLP_FIT = "train.mlp"
    PLATT = "train.platt"
    MODEL_SCORES = "evaluate.model"


class RecordFormatError(ValueError):
    """A message payload that does not follow the record contract of this module."""


# Record names inside a message's RecordDict.
ROWS: Final = "flute.rows"
ROUND: Final = "flute.round"
WEIGHTS: Final = "flute.weights"
PREPROCESSING: Final = "flute.preprocessing"
OBJECTIVE: Final = "flute.objective"
COLUMN_SUMS: Final = "flute.column-sums"
COUNTS: Final = "flute.counts"
HUB: Final = "flute.hub"
NEWTON_SUMS: Final = "flute.newton-sums"
SCORES: Final = "flute.scores"

RowPart = Literal["all", "train", "held_out"]


# -- reading helpers ------------------------------------------------------------------------


def _array_record(record: RecordDict, name: str) -> ArrayRecord:
    if name not in record.array_records:
        raise RecordFormatError(f"message lacks array record {name!r} (has {sorted(record.keys())})")
    return record.array_records[name]


def _config_record(record: RecordDict, name: str) -> ConfigRecord:
    if name not in record.config_records:
        raise RecordFormatError(f"message lacks config record {name!r} (has {sorted(record.keys())})")
    return record.config_records[name]


def _metric_record(record: RecordDict, name: str) -> MetricRecord:
    if name not in record.metric_records:
        raise RecordFormatError(f"message lacks metric record {name!r} (has {sorted(record.keys())})")
    return record.metric_records[name]


def _array(record: ArrayRecord, name: str, key: str, *, dtype: type, ndim: int) -> np.ndarray:
    if key not in record:
        raise RecordFormatError(f"array record {name!r} lacks {key!r} (has {sorted(record.keys())})")
    value = record[key].numpy()
    if value.dtype != dtype or value.ndim != ndim:
        raise RecordFormatError(f"{name}.{key}: expected a {ndim}-d {np.dtype(dtype)} array, got {value.ndim}-d {value.dtype}")
    if value.dtype == np.float64 and not np.all(np.isfinite(value)):
        raise RecordFormatError(f"{name}.{key}: holds NaN or infinite values")
    return value


def _scalar(record: Mapping[str, object], name: str, key: str, kind: type) -> object:
    if key not in record:
        raise RecordFormatError(f"record {name!r} lacks {key!r} (has {sorted(record.keys())})")
    value = record[key]
    # bool is an int subclass; a flag must not pass for a count or vice versa.
    if isinstance(value, bool) != (kind is bool) or not isinstance(value, kind):
        raise RecordFormatError(f"{name}.{key}: expected {kind.__name__}, got {type(value).__name__}")
    return value


def _int(record: Mapping[str, object], name: str, key: str) -> int:
    return int(_scalar(record, name, key, int))  # type: ignore[call-overload]


def _float(record: Mapping[str, object], name: str, key: str) -> float:
    value = float(_scalar(record, name, key, float))  # type: ignore[arg-type]
    if not np.isfinite(value):
        raise RecordFormatError(f"{name}.{key}: {value} is not finite")
    return value


def _arrays(**arrays: np.ndarray) -> ArrayRecord:
    return ArrayRecord({key: Array(np.ascontiguousarray(value)) for key, value in arrays.items()})


# -- shared parts ---------------------------------------------------------------------------


@dataclass(frozen=True)
class RowSelection:
    """Which of a hub's rows a task uses: all of them, or the training / held-out part of a
    stratified fold split that the hub computes itself from (n_folds, seed)."""

    part: RowPart = "all"
    n_folds: int = 0
    fold: int = 0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.part not in ("all", "train", "held_out"):
            raise RecordFormatError(f"row part must be 'all', 'train' or 'held_out', got {self.part!r}")
        if self.part != "all" and not (self.n_folds >= 2 and 0 <= self.fold < self.n_folds):
            raise RecordFormatError(f"row part {self.part!r} needs n_folds >= 2 and 0 <= fold < n_folds, got {self.n_folds}/{self.fold}")

    def to_config(self) -> ConfigRecord:
        return ConfigRecord({"part": self.part, "n-folds": self.n_folds, "fold": self.fold, "seed": self.seed})

    @classmethod
    def from_record(cls, record: RecordDict) -> RowSelection:
        config = _config_record(record, ROWS)
        part = _scalar(config, ROWS, "part", str)
        return cls(part, _int(config, ROWS, "n-folds"), _int(config, ROWS, "fold"), _int(config, ROWS, "seed"))  # type: ignore[arg-type]


@dataclass(frozen=True)
class Preprocessing:
    """Global means and scales (one per cohort variable) that every hub applies identically."""

    means: np.ndarray
    scales: np.ndarray

    def to_arrays(self) -> ArrayRecord:
        return _arrays(means=self.means, scales=self.scales)

    @classmethod
    def from_record(cls, record: RecordDict) -> Preprocessing:
        arrays = _array_record(record, PREPROCESSING)
        means = _array(arrays, PREPROCESSING, "means", dtype=np.float64, ndim=1)
        scales = _array(arrays, PREPROCESSING, "scales", dtype=np.float64, ndim=1)
        if means.shape != scales.shape or np.any(scales <= 0):
            raise RecordFormatError(f"{PREPROCESSING}: means and scales must have equal length and positive scales")
        return cls(means, scales)


def _weights(record: RecordDict) -> np.ndarray:
    return _array(_array_record(record, WEIGHTS), WEIGHTS, "weights", dtype=np.float64, ndim=1)


# -- the payloads ---------------------------------------------------------------------------


@dataclass(frozen=True)
class StatsIns:
    rows: RowSelection

    def to_record(self) -> RecordDict:
        return RecordDict({ROWS: self.rows.to_config()})

    @classmethod
    def from_record(cls, record: RecordDict) -> StatsIns:
        return cls(RowSelection.from_record(record))


@dataclass(frozen=True)
class StatsRes:
    """The hub's name, column sums of the selected rows (after log-transform, with the count of
    rows missing a value) and their outcome counts."""

    hub: str
    sums: ColumnSums
    n_positive: int

    def to_record(self) -> RecordDict:
        return RecordDict(
            {
                HUB: ConfigRecord({"name": self.hub}),
                COLUMN_SUMS: _arrays(n_observed=self.sums.n_observed, total=self.sums.total, total_squares=self.sums.total_squares),
                COUNTS: MetricRecord({"n-rows": self.sums.n_rows, "n-incomplete": self.sums.n_incomplete, "n-positive": self.n_positive}),
            }
        )

    @classmethod
    def from_record(cls, record: RecordDict) -> StatsRes:
        arrays = _array_record(record, COLUMN_SUMS)
        counts = _metric_record(record, COUNTS)
        sums = ColumnSums(
            n_rows=_int(counts, COUNTS, "n-rows"),
            n_observed=_array(arrays, COLUMN_SUMS, "n_observed", dtype=np.int64, ndim=1),
            total=_array(arrays, COLUMN_SUMS, "total", dtype=np.float64, ndim=1),
            total_squares=_array(arrays, COLUMN_SUMS, "total_squares", dtype=np.float64, ndim=1),
            n_incomplete=_int(counts, COUNTS, "n-incomplete"),
        )
        hub = str(_scalar(_config_record(record, HUB), HUB, "name", str))
        return cls(hub, sums, _int(counts, COUNTS, "n-positive"))


@dataclass(frozen=True)
class TrainIns:
    """One training round: global weights, the rows to train on, the global preprocessing and
    the class weights (resolved from global counts). Everything else the hub needs (epochs,
    learning rate, proximal term, l2) it takes from the study spec it validated itself."""

    round: int
    weights: np.ndarray
    rows: RowSelection
    preprocessing: Preprocessing
    class_weights: tuple[float, float]

    def to_record(self) -> RecordDict:
        return RecordDict(
            {
                WEIGHTS: _arrays(weights=self.weights),
                ROWS: self.rows.to_config(),
                PREPROCESSING: self.preprocessing.to_arrays(),
                OBJECTIVE: ConfigRecord({"round": self.round, "class-weights": [float(w) for w in self.class_weights]}),
            }
        )

    @classmethod
    def from_record(cls, record: RecordDict) -> TrainIns:
        objective = _config_record(record, OBJECTIVE)
        class_weights = objective.get("class-weights")
        if not (isinstance(class_weights, list) and len(class_weights) == 2 and all(isinstance(w, float) and np.isfinite(w) and w > 0 for w in class_weights)):
            raise RecordFormatError(f"{OBJECTIVE}.class-weights: expected two positive finite floats, got {class_weights!r}")
        return cls(
            round=_int(objective, OBJECTIVE, "round"),
            weights=_weights(record),
            rows=RowSelection.from_record(record),
            preprocessing=Preprocessing.from_record(record),
            class_weights=(class_weights[0], class_weights[1]),
        )


@dataclass(frozen=True)
class NewtonRes:
    sums: NewtonSums

    def to_record(self) -> RecordDict:
        return RecordDict(
            {
                NEWTON_SUMS: _arrays(gradient=self.sums.gradient, hessian=self.sums.hessian),
                COUNTS: MetricRecord({"weight-total": self.sums.weight_total, "loss-total": self.sums.loss_total}),
            }
        )

    @classmethod
    def from_record(cls, record: RecordDict) -> NewtonRes:
        arrays = _array_record(record, NEWTON_SUMS)
        counts = _metric_record(record, COUNTS)
        gradient = _array(arrays, NEWTON_SUMS, "gradient", dtype=np.float64, ndim=1)
        hessian = _array(arrays, NEWTON_SUMS, "hessian", dtype=np.float64, ndim=2)
        if hessian.shape != (gradient.shape[0], gradient.shape[0]):
            raise RecordFormatError(f"{NEWTON_SUMS}: Hessian {hessian.shape} does not match gradient length {gradient.shape[0]}")
        return cls(NewtonSums(_float(counts, COUNTS, "weight-total"), _float(counts, COUNTS, "loss-total"), gradient, hessian))


@dataclass(frozen=True)
class FitRes:
    fit: LocalFit

    def to_record(self) -> RecordDict:
        return RecordDict(
            {
                WEIGHTS: _arrays(weights=self.fit.weights),
                COUNTS: MetricRecord({"weight-total": self.fit.weight_total, "loss-total": self.fit.loss_total}),
            }
        )

    @classmethod
    def from_record(cls, record: RecordDict) -> FitRes:
        counts = _metric_record(record, COUNTS)
        return cls(LocalFit(_weights(record), _float(counts, COUNTS, "weight-total"), _float(counts, COUNTS, "loss-total")))


@dataclass(frozen=True)
class EvalIns:
    """Score the selected rows with these weights and preprocessing."""

    weights: np.ndarray
    rows: RowSelection
    preprocessing: Preprocessing

    def to_record(self) -> RecordDict:
        return RecordDict({WEIGHTS: _arrays(weights=self.weights), ROWS: self.rows.to_config(), PREPROCESSING: self.preprocessing.to_arrays()})

    @classmethod
    def from_record(cls, record: RecordDict) -> EvalIns:
        return cls(_weights(record), RowSelection.from_record(record), Preprocessing.from_record(record))


@dataclass(frozen=True)
class EvalRes:
    """The hub's score histogram (flute.evaluate.ScoreSummary) on the study's ScoreGrid."""

    summary: ScoreSummary

    def to_record(self) -> RecordDict:
        return RecordDict({SCORES: _arrays(**self.summary.to_arrays())})

    @classmethod
    def from_record(cls, record: RecordDict, grid: ScoreGrid) -> EvalRes:
        arrays = _array_record(record, SCORES)
        try:
            return cls(ScoreSummary.from_arrays({key: arrays[key].numpy() for key in arrays}, grid))
        except (TypeError, ValueError) as exc:
            raise RecordFormatError(f"{SCORES}: {exc}") from exc
