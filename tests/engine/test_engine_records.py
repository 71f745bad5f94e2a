"""Every message payload survives Flower's wire encoding unchanged, and a malformed payload is
refused with the record and key named."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from flute.engine.flower import ConfigRecord, MetricRecord, RecordDict, record_from_bytes, record_to_bytes
from flute.engine.records import (
    COUNTS,
    ROWS,
    EvalIns,
    EvalRes,
    FitRes,
    NewtonRes,
    Preprocessing,
    RecordFormatError,
    RowSelection,
    StatsIns,
    StatsRes,
    TrainIns,
)
from flute.evaluate.grid import ScoreGrid
from flute.evaluate.summary import summarise_scores
from flute.learn.logistic import LocalFit, NewtonSums
from flute.learn.preprocess import ColumnSums

finite = st.floats(min_value=-1e12, max_value=1e12, allow_nan=False, allow_infinity=False)
positive = st.floats(min_value=1e-6, max_value=1e6, allow_nan=False, allow_infinity=False)


def vectors(size: int, elements: st.SearchStrategy[float] = finite) -> st.SearchStrategy[np.ndarray]:
    return arrays(np.float64, size, elements=elements)


rows = st.one_of(
    st.just(RowSelection()),
    st.builds(
        lambda k, fold, part, seed: RowSelection(part, k, fold % k, seed),
        st.integers(2, 20),
        st.integers(0, 100),
        st.sampled_from(["train", "held_out"]),
        st.integers(0, 2**32 - 1),
    ),
)


def wire(record: RecordDict) -> RecordDict:
    return record_from_bytes(record_to_bytes(record))


@st.composite
def preprocessing(draw: st.DrawFn, size: int) -> Preprocessing:
    return Preprocessing(draw(vectors(size)), draw(vectors(size, positive)))


@settings(max_examples=50, deadline=None)
@given(rows)
def test_stats_ins_round_trips(selection: RowSelection) -> None:
    assert StatsIns.from_record(wire(StatsIns(selection).to_record())) == StatsIns(selection)


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 8).flatmap(lambda d: st.tuples(st.integers(0, 10**6), arrays(np.int64, d, elements=st.integers(0, 10**6)), vectors(d), vectors(d))), st.integers(0, 10**6), st.text(min_size=1, max_size=30))
def test_stats_res_round_trips(parts: tuple, n_positive: int, hub: str) -> None:
    n_rows, observed, total, squares = parts
    original = StatsRes(hub, ColumnSums(n_rows, observed, total, squares, n_rows // 3), n_positive)
    back = StatsRes.from_record(wire(original.to_record()))
    assert back.hub == hub and back.n_positive == n_positive and back.sums.n_rows == n_rows
    assert back.sums.n_incomplete == n_rows // 3
    for name in ("n_observed", "total", "total_squares"):
        np.testing.assert_array_equal(getattr(back.sums, name), getattr(original.sums, name))


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 8).flatmap(lambda d: st.tuples(vectors(d + 1), preprocessing(d))), st.integers(0, 1000), rows, st.tuples(positive, positive))
def test_train_ins_round_trips(parts: tuple, round_number: int, selection: RowSelection, class_weights: tuple[float, float]) -> None:
    weights, prep = parts
    back = TrainIns.from_record(wire(TrainIns(round_number, weights, selection, prep, class_weights).to_record()))
    assert (back.round, back.rows, back.class_weights) == (round_number, selection, class_weights)
    np.testing.assert_array_equal(back.weights, weights)
    np.testing.assert_array_equal(back.preprocessing.means, prep.means)
    np.testing.assert_array_equal(back.preprocessing.scales, prep.scales)


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 6).flatmap(lambda d: st.tuples(vectors(d), arrays(np.float64, (d, d), elements=finite))), positive, finite)
def test_newton_res_round_trips(parts: tuple, weight_total: float, loss_total: float) -> None:
    gradient, hessian = parts
    back = NewtonRes.from_record(wire(NewtonRes(NewtonSums(weight_total, loss_total, gradient, hessian)).to_record())).sums
    assert (back.weight_total, back.loss_total) == (weight_total, loss_total)
    np.testing.assert_array_equal(back.gradient, gradient)
    np.testing.assert_array_equal(back.hessian, hessian)


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 9).flatmap(vectors), positive, finite)
def test_fit_res_round_trips(weights: np.ndarray, weight_total: float, loss_total: float) -> None:
    back = FitRes.from_record(wire(FitRes(LocalFit(weights, weight_total, loss_total)).to_record())).fit
    np.testing.assert_array_equal(back.weights, weights)
    assert (back.weight_total, back.loss_total) == (weight_total, loss_total)


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 6).flatmap(lambda d: st.tuples(vectors(d + 1), preprocessing(d))), rows)
def test_eval_ins_round_trips(parts: tuple, selection: RowSelection) -> None:
    weights, prep = parts
    back = EvalIns.from_record(wire(EvalIns(weights, selection, prep).to_record()))
    assert back.rows == selection
    np.testing.assert_array_equal(back.weights, weights)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 1), st.floats(0.0, 1.0)), min_size=1, max_size=60))
def test_eval_res_round_trips(scored: list[tuple[int, float]]) -> None:
    grid = ScoreGrid(n_bins=1000)
    summary = summarise_scores(np.array([y for y, _ in scored]), np.array([p for _, p in scored]), grid)
    assert EvalRes.from_record(wire(EvalRes(summary).to_record()), grid).summary.equals(summary)


def test_malformed_payloads_are_refused_with_record_and_key() -> None:
    good = TrainIns(1, np.zeros(3), RowSelection(), Preprocessing(np.zeros(2), np.ones(2)), (1.0, 1.0)).to_record()
    missing = RecordDict({name: record for name, record in good.items() if name != ROWS})
    with pytest.raises(RecordFormatError, match="lacks config record 'flute.rows'"):
        TrainIns.from_record(missing)
    flag_for_count = StatsRes("h", ColumnSums(3, np.array([3]), np.array([1.0]), np.array([1.0])), 1).to_record()
    flag_for_count[COUNTS] = MetricRecord({"n-rows": 3.5, "n-positive": 1})
    with pytest.raises(RecordFormatError, match="n-rows: expected int"):
        StatsRes.from_record(flag_for_count)
    bad_part = StatsIns(RowSelection()).to_record()
    bad_part[ROWS] = ConfigRecord({"part": "everything", "n-folds": 0, "fold": 0, "seed": 0})
    with pytest.raises(RecordFormatError, match="row part"):
        StatsIns.from_record(bad_part)
    with pytest.raises(RecordFormatError, match="NaN or infinite"):
        TrainIns.from_record(TrainIns(1, np.array([0.0, np.nan, 1.0]), RowSelection(), Preprocessing(np.zeros(2), np.ones(2)), (1.0, 1.0)).to_record())
