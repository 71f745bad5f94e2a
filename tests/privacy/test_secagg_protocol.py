"""Secure sum correctness, dropout recovery and aborts (URS-2, URS-14, F-SRS-10, F-PIL-11).

Real crypto end to end: X25519, AES-CTR, AES-GCM, Ed25519 and Shamir as shipped.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import stats

from flute.privacy.secagg import (
    HUB_STAGES,
    ClientSession,
    ClientStage,
    FixedPoint,
    SecAggConfig,
    ServerSession,
    ThresholdError,
    enrol_hubs,
    run_secure_sum,
)

LENGTH = 16
SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# Hubs dropping at these stages are not in the sum; later drops still are (their masked input arrived).
EXCLUDING_STAGES = ("advertise_keys", "share_keys", "masked_input")


def expected_sum(inputs: dict[int, np.ndarray], drop_at: dict[str, set[int]]) -> np.ndarray:
    excluded = set().union(*(drop_at.get(stage, set()) for stage in EXCLUDING_STAGES))
    return sum((values for hub, values in inputs.items() if hub not in excluded), np.zeros(LENGTH))


@st.composite
def rounds_with_dropout(draw: st.DrawFn) -> tuple[SecAggConfig, dict[int, np.ndarray], dict[str, set[int]]]:
    """A full-graph round and a dropout schedule removing at most n - t hubs over all stages."""
    n = draw(st.integers(3, 7))
    threshold = draw(st.integers(n // 2 + 1, n))
    hubs = tuple(draw(st.lists(st.integers(0, 2**40), min_size=n, max_size=n, unique=True)))
    dropping = draw(st.lists(st.sampled_from(hubs), max_size=n - threshold, unique=True))
    drop_at: dict[str, set[int]] = {}
    for hub in dropping:
        drop_at.setdefault(draw(st.sampled_from(HUB_STAGES)), set()).add(hub)
    values = st.integers(-(2**20), 2**20)
    inputs = {hub: np.array(draw(st.lists(values, min_size=LENGTH, max_size=LENGTH)), dtype=np.int64) for hub in hubs}
    config = SecAggConfig(f"round-{draw(st.integers(0, 10**6))}", hubs, LENGTH, threshold)
    return config, inputs, drop_at


@SETTINGS
@given(rounds_with_dropout())
def test_integer_sum_is_exact_under_dropout_of_up_to_n_minus_t(case) -> None:  # URS-2, F-PIL-11
    config, inputs, drop_at = case
    assert np.array_equal(run_secure_sum(inputs, config, drop_at), expected_sum(inputs, drop_at))


@SETTINGS
@given(
    st.lists(
        st.lists(st.floats(-1000, 1000, allow_nan=False), min_size=LENGTH, max_size=LENGTH), min_size=3, max_size=6
    ),
    st.integers(8, 30),
)
def test_float_sum_within_quantisation_bound(rows: list[list[float]], scale_bits: int) -> None:
    inputs = {hub: np.array(row) for hub, row in enumerate(rows)}
    encoding = FixedPoint(clip_bound=1000.0, scale_bits=scale_bits)
    config = SecAggConfig("float-round", tuple(inputs), LENGTH, len(rows) // 2 + 1, encoding=encoding)
    result = run_secure_sum(inputs, config)
    bound = len(rows) * encoding.resolution / 2 + 1e-9 * len(rows) * 1000
    assert np.max(np.abs(result - np.sum(rows, axis=0))) <= bound


def test_sparse_graph_with_many_hubs_and_dropouts() -> None:  # SecAgg+ neighbour graph
    hubs = tuple(range(40))
    config = SecAggConfig("sparse", hubs, LENGTH, threshold=4, neighbours=6)
    assert all(len(config.graph.neighbours(hub)) == 6 for hub in hubs)
    tolerance = 7 - config.threshold  # each hub's secrets are held by itself and its 6 neighbours
    dropping: list[int] = []
    for hub in hubs:  # as many dropouts as every neighbourhood can absorb
        if all(len(config.graph.share_holders(h) & {*dropping, hub}) <= tolerance for h in hubs):
            dropping.append(hub)
    assert len(dropping) >= 8
    stages = ("share_keys", "masked_input", "confirm_survivors", "unmask")
    drop_at = {stage: set(dropping[i :: len(stages)]) for i, stage in enumerate(stages)}
    rng = np.random.default_rng(7)
    inputs = {hub: rng.integers(-(10**6), 10**6, LENGTH) for hub in hubs}
    assert np.array_equal(run_secure_sum(inputs, config, drop_at), expected_sum(inputs, drop_at))


def test_sparse_graph_aborts_when_one_neighbourhood_loses_too_many() -> None:
    config = SecAggConfig("sparse-abort", tuple(range(20)), LENGTH, threshold=4, neighbours=6)
    lost = set(sorted(config.graph.neighbours(5))[:4])
    inputs = {hub: np.ones(LENGTH) for hub in config.hub_ids}
    with pytest.raises(ThresholdError, match="threshold is 4"):
        run_secure_sum(inputs, config, {"masked_input": lost})


def test_inputs_of_any_shape_are_summed_in_that_shape() -> None:
    inputs = {hub: np.full((2, 3), hub, dtype=np.float64) for hub in range(3)}
    result = run_secure_sum(inputs, SecAggConfig("shaped", (0, 1, 2), 6, 2))
    assert result.shape == (2, 3)
    assert np.array_equal(result, np.full((2, 3), 3.0))


@pytest.mark.parametrize("stage", HUB_STAGES)
def test_fewer_than_t_hubs_at_any_stage_aborts(stage: str) -> None:
    hubs = tuple(range(5))
    config = SecAggConfig(f"abort-{stage}", hubs, LENGTH, threshold=3)
    inputs = {hub: np.ones(LENGTH) for hub in hubs}
    with pytest.raises(ThresholdError, match="threshold is 3|3 needed"):
        run_secure_sum(inputs, config, {stage: {0, 1, 2}})


def make_round(config: SecAggConfig) -> tuple[ServerSession, dict[int, ClientSession]]:
    identities, enrolled = enrol_hubs(config.hub_ids)
    return ServerSession(config, enrolled), {
        hub: ClientSession(config, hub, identities[hub], enrolled) for hub in config.hub_ids
    }


def test_abort_after_masked_input_reveals_no_share() -> None:
    """With fewer than t masked inputs the server stops before any hub reveals a share."""
    config = SecAggConfig("abort-no-reveal", (0, 1, 2, 3), LENGTH, threshold=3)
    server, hubs = make_round(config)
    directory = server.collect_keys(hub.advertise_keys() for hub in hubs.values())
    deliveries = server.route_shares(hub.share_keys(directory) for hub in hubs.values())
    masked = [hubs[i].masked_input(deliveries[i], np.ones(LENGTH)) for i in (0, 1)]
    with pytest.raises(ThresholdError):
        server.collect_masked(masked)
    assert not any(hub.stage in (ClientStage.UNMASK, ClientStage.DONE) for hub in hubs.values())


def test_unmask_with_fewer_than_t_responses_gives_fewer_than_t_shares_of_every_secret() -> None:
    config = SecAggConfig("abort-unmask", (0, 1, 2, 3, 4), LENGTH, threshold=3)
    server, hubs = make_round(config)
    directory = server.collect_keys(hub.advertise_keys() for hub in hubs.values())
    deliveries = server.route_shares(hub.share_keys(directory) for hub in hubs.values())
    survivors = server.collect_masked(hubs[i].masked_input(deliveries[i], np.ones(LENGTH)) for i in (0, 1, 2, 3))
    request = server.collect_confirmations(hubs[i].confirm_survivors(survivors) for i in (0, 1, 2, 3))
    responses = [hubs[i].unmask(request) for i in (0, 1)]
    for owner in config.hub_ids:
        revealed = sum(owner in r.seed_shares for r in responses) + sum(owner in r.key_shares for r in responses)
        assert revealed < config.threshold
    with pytest.raises(ThresholdError, match="answered the unmask request"):
        server.collect_unmask(responses)
    with pytest.raises(Exception, match="aborted earlier"):
        server.collect_unmask(responses)


def test_masks_differ_across_rounds() -> None:
    """Fresh keys and round-bound derivation: the same input never masks the same way twice."""
    values = np.arange(LENGTH, dtype=np.float64)
    masked_inputs = []
    for round_id in ("study/run/1", "study/run/2"):
        config = SecAggConfig(round_id, (0, 1, 2), LENGTH, threshold=2)
        server, hubs = make_round(config)
        directory = server.collect_keys(hub.advertise_keys() for hub in hubs.values())
        deliveries = server.route_shares(hub.share_keys(directory) for hub in hubs.values())
        masked_inputs.append(hubs[0].masked_input(deliveries[0], values).values)
    assert not np.any(masked_inputs[0] == masked_inputs[1])


def test_single_masked_input_is_statistically_uniform() -> None:
    """A hub's upload of all zeros looks like uniform 64-bit words: bits balanced, top byte flat."""
    length = 40_000
    config = SecAggConfig("uniformity", (0, 1, 2), length, threshold=2)
    server, hubs = make_round(config)
    directory = server.collect_keys(hub.advertise_keys() for hub in hubs.values())
    deliveries = server.route_shares(hub.share_keys(directory) for hub in hubs.values())
    masked = hubs[1].masked_input(deliveries[1], np.zeros(length)).values
    bits = np.unpackbits(masked.view(np.uint8)).reshape(length, 64).mean(axis=0)
    assert np.all(np.abs(bits - 0.5) < 6 * 0.5 / np.sqrt(length))
    top_byte_counts = np.bincount((masked >> np.uint64(56)).astype(np.int64), minlength=256)
    assert stats.chisquare(top_byte_counts).pvalue > 1e-6


def test_hub_state_survives_a_process_restart_between_every_stage() -> None:
    """Engines may run each stage in a fresh hub process: save_state/restore must lose nothing."""
    config = SecAggConfig("restart", (0, 1, 2, 3), LENGTH, threshold=3)
    identities, enrolled = enrol_hubs(config.hub_ids)
    server = ServerSession(config, enrolled)
    states = {hub: ClientSession(config, hub, identities[hub], enrolled).save_state() for hub in config.hub_ids}
    inputs = {hub: np.arange(LENGTH) * (hub + 1) for hub in config.hub_ids}

    def stage(hub: int, call) -> object:
        session = ClientSession.restore(states[hub], identities[hub], enrolled)
        reply = call(session)
        states[hub] = session.save_state()
        return reply

    directory = server.collect_keys(stage(hub, lambda s: s.advertise_keys()) for hub in config.hub_ids)
    deliveries = server.route_shares(stage(hub, lambda s: s.share_keys(directory)) for hub in config.hub_ids)
    survivors = server.collect_masked(
        stage(hub, lambda s, hub=hub: s.masked_input(deliveries[hub], inputs[hub])) for hub in (0, 1, 2)
    )
    request = server.collect_confirmations(stage(hub, lambda s: s.confirm_survivors(survivors)) for hub in (0, 1, 2))
    result = server.collect_unmask(stage(hub, lambda s: s.unmask(request)) for hub in (0, 1, 2))
    assert np.array_equal(result.total, inputs[0] + inputs[1] + inputs[2])
    done = ClientSession.restore(states[0], identities[0], enrolled)
    assert done.stage is ClientStage.DONE
