"""Typed payloads of the tree, forest, boosting, SVM and MLP messages (see `flute.engine.records` for
the shared parts and the reading helpers).

    query.bins         BinsIns   -> BinsRes        fine-grid counts of the model inputs (additive)
    train.histograms   HistIns   -> HistRes        per open node x feature x bin sums (additive)
    train.svm          TrainIns  -> FitRes         locally trained SVM weights
    train.mlp          TrainIns  -> FitRes         locally trained MLP parameter vector
    train.platt        PlattIns  -> NewtonRes      Newton sums of the Platt map (additive)

Trees travel as the parameter vectors of `flute.learn.models` (the same form results store), so
a hub decodes and checks them exactly as it checks a model it is asked to evaluate.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

import numpy as np

from flute.engine.flower import ConfigRecord, RecordDict
from flute.engine.records import (
    OBJECTIVE,
    PREPROCESSING,
    ROWS,
    WEIGHTS,
    Preprocessing,
    RecordFormatError,
    RowSelection,
    _array,
    _array_record,
    _arrays,
    _config_record,
    _int,
    _scalar,
)

FINE_COUNTS: Final = "flute.fine-counts"
HISTOGRAMS: Final = "flute.histograms"
TREES: Final = "flute.trees"
PLATT: Final = "flute.platt"

HistogramKind = Literal["class", "gradient"]


def _class_weights(record: RecordDict) -> tuple[float, float]:
    value = _config_record(record, OBJECTIVE).get("class-weights")
    if not (isinstance(value, list) and len(value) == 2 and all(isinstance(w, float) and np.isfinite(w) and w > 0 for w in value)):
        raise RecordFormatError(f"{OBJECTIVE}.class-weights: expected two positive finite floats, got {value!r}")
    return (value[0], value[1])


@dataclass(frozen=True)
class BinsIns:
    rows: RowSelection
    preprocessing: Preprocessing

    def to_record(self) -> RecordDict:
        return RecordDict({ROWS: self.rows.to_config(), PREPROCESSING: self.preprocessing.to_arrays()})

    @classmethod
    def from_record(cls, record: RecordDict) -> BinsIns:
        return cls(RowSelection.from_record(record), Preprocessing.from_record(record))


@dataclass(frozen=True)
class BinsRes:
    """Counts of observed model inputs per feature and fine-grid slot."""

    counts: np.ndarray

    def to_record(self) -> RecordDict:
        return RecordDict({FINE_COUNTS: _arrays(counts=self.counts)})

    @classmethod
    def from_record(cls, record: RecordDict) -> BinsRes:
        counts = _array(_array_record(record, FINE_COUNTS), FINE_COUNTS, "counts", dtype=np.int64, ndim=2)
        if np.any(counts < 0):
            raise RecordFormatError(f"{FINE_COUNTS}.counts: negative counts")
        return cls(counts)


@dataclass(frozen=True)
class HistIns:
    """Sum statistics of the open nodes of `growing` (trees being grown, as one ensemble vector)
    over the selected rows. Class histograms may ask for bootstrap weights drawn from `seed`;
    gradient histograms are taken at the margins of `completed` (the trees boosted so far)."""

    kind: HistogramKind
    rows: RowSelection
    preprocessing: Preprocessing
    class_weights: tuple[float, float]
    cuts: tuple[np.ndarray, ...]
    completed: np.ndarray
    growing: np.ndarray
    open_trees: np.ndarray
    open_nodes: np.ndarray
    bootstrap: bool
    seed: int

    def to_record(self) -> RecordDict:
        cut_counts = np.array([c.shape[0] for c in self.cuts], dtype=np.int64)
        all_cuts = np.concatenate(self.cuts) if self.cuts else np.empty(0)
        return RecordDict(
            {
                ROWS: self.rows.to_config(),
                PREPROCESSING: self.preprocessing.to_arrays(),
                OBJECTIVE: ConfigRecord(
                    {"class-weights": [float(w) for w in self.class_weights], "kind": self.kind, "bootstrap": self.bootstrap, "seed": self.seed}
                ),
                TREES: _arrays(
                    cut_counts=cut_counts,
                    cuts=all_cuts,
                    completed=self.completed,
                    growing=self.growing,
                    open_trees=self.open_trees,
                    open_nodes=self.open_nodes,
                ),
            }
        )

    @classmethod
    def from_record(cls, record: RecordDict) -> HistIns:
        objective = _config_record(record, OBJECTIVE)
        kind = _scalar(objective, OBJECTIVE, "kind", str)
        if kind not in ("class", "gradient"):
            raise RecordFormatError(f"{OBJECTIVE}.kind: expected 'class' or 'gradient', got {kind!r}")
        arrays = _array_record(record, TREES)
        cut_counts = _array(arrays, TREES, "cut_counts", dtype=np.int64, ndim=1)
        all_cuts = _array(arrays, TREES, "cuts", dtype=np.float64, ndim=1)
        if np.any(cut_counts < 0) or int(cut_counts.sum()) != all_cuts.shape[0]:
            raise RecordFormatError(f"{TREES}: cut counts {cut_counts.tolist()} do not match {all_cuts.shape[0]} cuts")
        cuts = tuple(np.split(all_cuts, np.cumsum(cut_counts)[:-1])) if cut_counts.size else ()
        open_trees = _array(arrays, TREES, "open_trees", dtype=np.int64, ndim=1)
        open_nodes = _array(arrays, TREES, "open_nodes", dtype=np.int64, ndim=1)
        if open_trees.shape != open_nodes.shape or open_trees.size == 0:
            raise RecordFormatError(f"{TREES}: open_trees and open_nodes must be equally long and non-empty")
        return cls(
            kind=kind,  # type: ignore[arg-type]
            rows=RowSelection.from_record(record),
            preprocessing=Preprocessing.from_record(record),
            class_weights=_class_weights(record),
            cuts=cuts,
            completed=_array(arrays, TREES, "completed", dtype=np.float64, ndim=1),
            growing=_array(arrays, TREES, "growing", dtype=np.float64, ndim=1),
            open_trees=open_trees,
            open_nodes=open_nodes,
            bootstrap=bool(_scalar(objective, OBJECTIVE, "bootstrap", bool)),
            seed=_int(objective, OBJECTIVE, "seed"),
        )


@dataclass(frozen=True)
class HistRes:
    """Summed statistics (n_open, n_features, max_bins + 1, n_stats)."""

    histograms: np.ndarray

    def to_record(self) -> RecordDict:
        return RecordDict({HISTOGRAMS: _arrays(sums=self.histograms)})

    @classmethod
    def from_record(cls, record: RecordDict) -> HistRes:
        return cls(_array(_array_record(record, HISTOGRAMS), HISTOGRAMS, "sums", dtype=np.float64, ndim=4))


@dataclass(frozen=True)
class PlattIns:
    """Newton sums of the Platt map `platt` for the SVM `weights` over the selected rows."""

    round: int
    weights: np.ndarray
    platt: np.ndarray
    rows: RowSelection
    preprocessing: Preprocessing

    def to_record(self) -> RecordDict:
        return RecordDict(
            {
                WEIGHTS: _arrays(weights=self.weights),
                PLATT: _arrays(platt=self.platt),
                ROWS: self.rows.to_config(),
                PREPROCESSING: self.preprocessing.to_arrays(),
                OBJECTIVE: ConfigRecord({"round": self.round}),
            }
        )

    @classmethod
    def from_record(cls, record: RecordDict) -> PlattIns:
        platt = _array(_array_record(record, PLATT), PLATT, "platt", dtype=np.float64, ndim=1)
        if platt.shape != (2,):
            raise RecordFormatError(f"{PLATT}.platt: expected 2 values (intercept, slope), got {platt.shape}")
        return cls(
            round=_int(_config_record(record, OBJECTIVE), OBJECTIVE, "round"),
            weights=_array(_array_record(record, WEIGHTS), WEIGHTS, "weights", dtype=np.float64, ndim=1),
            platt=platt,
            rows=RowSelection.from_record(record),
            preprocessing=Preprocessing.from_record(record),
        )
