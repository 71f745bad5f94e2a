"""Hub releases are additive, integer-only, and reject bad input loudly (F-PIL-11, F-PIL-22)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flute.evaluate.grid import WHOLE_PERCENT_RISKS, ScoreGrid
from flute.evaluate.summary import ScoreSummary, combine, summarise_scores

GRID = ScoreGrid()

hub_data = st.integers(0, 80).flatmap(
    lambda n: st.tuples(
        st.lists(st.integers(0, 1), min_size=n, max_size=n),
        st.lists(
            st.one_of(st.floats(0.0, 1.0), st.sampled_from([0.0, 1.0, 0.15, 1e-300, 1 - 1e-16])),
            min_size=n,
            max_size=n,
        ),
    )
)


@settings(max_examples=60, deadline=None)
@given(hubs=st.lists(hub_data, min_size=1, max_size=4))
def test_summary_of_concatenated_data_equals_sum_of_hub_summaries(hubs: list) -> None:
    parts = [summarise_scores(np.array(y, dtype=int), np.array(p, dtype=float), GRID) for y, p in hubs]
    y_all = np.concatenate([np.array(y, dtype=int) for y, _ in hubs])
    p_all = np.concatenate([np.array(p, dtype=float) for _, p in hubs])
    assert combine(parts).equals(summarise_scores(y_all, p_all, GRID))


def test_released_arrays_are_int64_and_sum_to_the_combined_summary() -> None:
    rng = np.random.default_rng(0)
    hubs = [summarise_scores(rng.integers(0, 2, n), rng.random(n), GRID) for n in (300, 50, 700)]
    released = [hub.to_arrays() for hub in hubs]
    assert all(a.dtype == np.int64 and a.shape == (GRID.n_bins,) for r in released for a in r.values())
    summed = {name: sum(r[name] for r in released) for name in released[0]}
    assert ScoreSummary.from_arrays(summed, GRID).equals(combine(hubs))
    assert combine(hubs).n == 1050


def test_from_arrays_rejects_wrong_names_dtypes_and_grids() -> None:
    arrays = summarise_scores(np.array([0, 1]), np.array([0.2, 0.8]), GRID).to_arrays()
    with pytest.raises(ValueError, match="missing \\['event_counts'\\]"):
        ScoreSummary.from_arrays({k: v for k, v in arrays.items() if k != "event_counts"}, GRID)
    with pytest.raises(TypeError, match="dtype float64"):
        ScoreSummary.from_arrays({**arrays, "event_counts": arrays["event_counts"].astype(float)}, GRID)
    with pytest.raises(ValueError, match="same ScoreGrid"):
        ScoreSummary.from_arrays(arrays, ScoreGrid(n_bins=2000))


def test_adding_summaries_on_different_grids_fails() -> None:
    a = summarise_scores(np.array([0, 1]), np.array([0.2, 0.8]), GRID)
    b = summarise_scores(np.array([0, 1]), np.array([0.2, 0.8]), ScoreGrid(n_bins=2000))
    with pytest.raises(ValueError, match="different grids"):
        _ = a + b


@pytest.mark.parametrize(
    ("y", "p", "message"),
    [
        ([0, 2], [0.1, 0.2], r"y\[1\] = 2 is not 0 or 1"),
        ([0, 1], [0.1, float("nan")], r"p\[1\] = nan is not a probability"),
        ([0, 1], [0.1, 1.2], r"p\[1\] = 1.2"),
        ([0, 1, 1], [0.1, 0.2], "equal length"),
    ],
)
def test_bad_hub_input_names_the_offending_position(y: list, p: list, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        summarise_scores(np.array(y), np.array(p), GRID)


def test_every_whole_percent_risk_is_a_bin_edge_and_binning_respects_it() -> None:
    edges = GRID.edges
    assert edges[0] == 0.0 and edges[-1] == 1.0 and np.all(np.diff(edges) > 0)
    for risk in WHOLE_PERCENT_RISKS:
        k = GRID.edge_index(risk)
        below = np.nextafter(risk, 0.0)
        assert GRID.bin_index(np.array([risk]))[0] == k
        assert GRID.bin_index(np.array([below]))[0] == k - 1
    assert np.all(np.diff(GRID.clipped_logit(edges[1:-1])) > 0)


def test_grid_rejects_thresholds_off_its_edges_and_bad_parameters() -> None:
    with pytest.raises(ValueError, match="not an edge"):
        GRID.edge_index(0.155)
    with pytest.raises(ValueError, match="too close together"):
        ScoreGrid(n_bins=100, exact_risks=(0.15, 0.151))
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        ScoreGrid(exact_risks=(1.0,))


def test_arrays_summed_with_the_wrong_modulus_are_detected() -> None:
    arrays = summarise_scores(np.array([0, 1]), np.array([1e-12, 0.8]), GRID).to_arrays()
    wrapped = {**arrays, "nonevent_logit_sums": arrays["nonevent_logit_sums"] % 2**32}
    with pytest.raises(ValueError, match="inconsistent with nonevent_counts"):
        ScoreSummary.from_arrays(wrapped, GRID)
