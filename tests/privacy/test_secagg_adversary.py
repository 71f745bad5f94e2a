"""A malicious aggregator or a forged hub is detected (URS-15, NF-SRS-5, F-PIL-11).

Each test plays the attacker against real sessions: forged or replayed key
advertisements, tampered share ciphertexts, and unmask requests crafted to make
hubs reveal both the mask seed and the mask key of one hub.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from flute.privacy.secagg import (
    AuthenticationError,
    ClientSession,
    KeyDirectory,
    ProtocolError,
    SecAggConfig,
    ServerSession,
    ShareDelivery,
    ThresholdError,
    UnmaskRequest,
    enrol_hubs,
)

HUBS = (1, 2, 3, 4, 5)
LENGTH = 8


def make_round(round_id: str = "study/run/7") -> tuple[SecAggConfig, ServerSession, dict[int, ClientSession]]:
    config = SecAggConfig(round_id, HUBS, LENGTH, threshold=3)
    identities, enrolled = enrol_hubs(HUBS)
    hubs = {hub: ClientSession(config, hub, identities[hub], enrolled) for hub in HUBS}
    return config, ServerSession(config, enrolled), hubs


def test_server_excludes_an_advertisement_with_a_forged_signature() -> None:
    _, server, hubs = make_round()
    advertisements = [hub.advertise_keys() for hub in hubs.values()]
    attacker = Ed25519PrivateKey.generate()  # not hub 2's enrolled key
    forged = dataclasses.replace(advertisements[1], signature=attacker.sign(advertisements[1].signed_payload()))
    directory = server.collect_keys([*advertisements[:1], forged, *advertisements[2:]])
    assert 2 not in {advertisement.hub_id for advertisement in directory.advertisements}
    assert "invalid signature" in server.rejected[2]


def test_hub_refuses_a_directory_with_a_swapped_key() -> None:
    """The aggregator substitutes its own X25519 key for hub 3's to read hub 3's shares."""
    _, server, hubs = make_round()
    directory = server.collect_keys(hub.advertise_keys() for hub in hubs.values())
    swapped = dataclasses.replace(directory.advertisements[2], cipher_public=b"\x09" + bytes(31))
    tampered = KeyDirectory(directory.round_id, (*directory.advertisements[:2], swapped, *directory.advertisements[3:]))
    with pytest.raises(AuthenticationError, match="invalid signature on key advertisement of hub 3"):
        hubs[1].share_keys(tampered)
    with pytest.raises(ProtocolError, match="aborted earlier"):
        hubs[1].share_keys(directory)


def test_advertisement_replayed_from_another_round_is_rejected() -> None:
    _, _, old_hubs = make_round("study/run/6")
    replayed = old_hubs[4].advertise_keys()
    _, server, hubs = make_round("study/run/7")
    fresh = [hubs[hub].advertise_keys() for hub in HUBS if hub != 4]
    directory = server.collect_keys([*fresh, replayed])
    assert "replayed" in server.rejected[4]
    assert 4 not in {advertisement.hub_id for advertisement in directory.advertisements}
    relabelled = dataclasses.replace(replayed, round_id="study/run/7")  # signature still binds round 6
    with pytest.raises(AuthenticationError, match="invalid signature"):
        hubs[1].share_keys(KeyDirectory(directory.round_id, (*directory.advertisements, relabelled)))


def test_hub_refuses_directory_that_drops_its_own_keys() -> None:
    _, server, hubs = make_round()
    directory = server.collect_keys(hub.advertise_keys() for hub in hubs.values())
    without_hub_1 = KeyDirectory(directory.round_id, directory.advertisements[1:])
    with pytest.raises(AuthenticationError, match="own advertisement"):
        hubs[1].share_keys(without_hub_1)


def advance_to_masked(hubs: dict[int, ClientSession], server: ServerSession) -> dict[int, ShareDelivery]:
    directory = server.collect_keys(hub.advertise_keys() for hub in hubs.values())
    return server.route_shares(hub.share_keys(directory) for hub in hubs.values())


def test_tampered_share_ciphertext_is_detected() -> None:
    _, server, hubs = make_round()
    deliveries = advance_to_masked(hubs, server)
    ciphertext = bytearray(deliveries[1].ciphertexts[2])
    ciphertext[-1] ^= 1
    tampered = ShareDelivery(1, deliveries[1].round_id, {**deliveries[1].ciphertexts, 2: bytes(ciphertext)})
    with pytest.raises(AuthenticationError, match="shares from hub 2 fail decryption"):
        hubs[1].masked_input(tampered, np.zeros(LENGTH))


def test_shares_redirected_to_another_hub_are_refused() -> None:
    _, server, hubs = make_round()
    deliveries = advance_to_masked(hubs, server)
    # hub 3's ciphertext for hub 2 handed to hub 1 as if hub 3 had encrypted it for hub 1
    swapped = {**deliveries[1].ciphertexts, 3: deliveries[2].ciphertexts[3]}
    redirected = ShareDelivery(1, deliveries[1].round_id, swapped)
    with pytest.raises(AuthenticationError):
        hubs[1].masked_input(redirected, np.zeros(LENGTH))


def confirmed_round() -> tuple[ServerSession, dict[int, ClientSession], UnmaskRequest]:
    _, server, hubs = make_round()
    deliveries = advance_to_masked(hubs, server)
    survivors = server.collect_masked(hubs[hub].masked_input(deliveries[hub], np.ones(LENGTH)) for hub in (1, 2, 3, 4))
    request = server.collect_confirmations(hubs[hub].confirm_survivors(survivors) for hub in (1, 2, 3, 4))
    return server, hubs, request


def test_hub_refuses_to_reveal_both_shares_of_one_hub() -> None:
    """Listing a survivor as dropped would hand the server its mask key and its seed."""
    _, hubs, request = confirmed_round()
    assert request.dropped == (5,)
    greedy = dataclasses.replace(request, dropped=(4, 5))
    with pytest.raises(AuthenticationError, match=r"both as survivors and dropped"):
        hubs[1].unmask(greedy)


def test_hub_refuses_a_survivor_set_other_than_the_one_it_signed() -> None:
    """Consistency check: telling different hubs different survivor sets is caught."""
    _, hubs, request = confirmed_round()
    shrunk = dataclasses.replace(request, survivors=(1, 2, 3), dropped=(4, 5))
    with pytest.raises(AuthenticationError, match="confirmed"):
        hubs[2].unmask(shrunk)


def test_hub_refuses_unmask_without_t_valid_confirmations() -> None:
    _, hubs, request = confirmed_round()
    with pytest.raises(ThresholdError, match="reveals nothing"):
        hubs[3].unmask(dataclasses.replace(request, confirmations=request.confirmations[:2]))
    forged = dataclasses.replace(request.confirmations[0], signature=bytes(64))
    with pytest.raises(AuthenticationError, match="survivor confirmation of hub 1"):
        hubs[2].unmask(dataclasses.replace(request, confirmations=(forged, *request.confirmations[1:])))


def test_honest_run_after_the_attacks_still_sums_correctly() -> None:
    server, hubs, request = confirmed_round()
    result = server.collect_unmask(hubs[hub].unmask(request) for hub in (1, 2, 3, 4))
    assert result.contributors == (1, 2, 3, 4)
    assert np.array_equal(result.total, np.full(LENGTH, 4.0))


def test_stages_must_run_in_order() -> None:
    _, server, hubs = make_round()
    with pytest.raises(ProtocolError, match="belongs to stage"):
        hubs[1].unmask(UnmaskRequest("study/run/7", HUBS, (), ()))
    with pytest.raises(ProtocolError, match="belongs to stage"):
        server.collect_masked([])


def test_malformed_masked_input_is_recorded_and_its_sender_treated_as_dropped() -> None:
    _, server, hubs = make_round()
    deliveries = advance_to_masked(hubs, server)
    masked = [hubs[hub].masked_input(deliveries[hub], np.full(LENGTH, float(hub))) for hub in HUBS]
    masked[4] = dataclasses.replace(masked[4], values=masked[4].values[:-1])  # hub 5 sends a short vector
    survivors = server.collect_masked(masked)
    assert survivors.survivors == (1, 2, 3, 4) and "shape" in server.rejected[5]
    request = server.collect_confirmations(hubs[hub].confirm_survivors(survivors) for hub in survivors.survivors)
    result = server.collect_unmask(hubs[hub].unmask(request) for hub in survivors.survivors)
    assert np.array_equal(result.total, np.full(LENGTH, 1.0 + 2 + 3 + 4))


@pytest.mark.parametrize("bad_key", [b"\x01" * 5, bytes(32)], ids=["wrong-length", "low-order-point"])
def test_signed_but_unusable_key_is_refused_at_collection(bad_key: bytes) -> None:
    """A hub signing a junk key must not make every peer's key agreement fail later."""
    config = SecAggConfig("study/run/7", HUBS, LENGTH, threshold=3)
    identities, enrolled = enrol_hubs(HUBS)
    server = ServerSession(config, enrolled)
    hubs = {hub: ClientSession(config, hub, identities[hub], enrolled) for hub in HUBS}
    advertisements = [hub.advertise_keys() for hub in hubs.values()]
    junk = dataclasses.replace(advertisements[2], mask_public=bad_key)
    junk = dataclasses.replace(junk, signature=identities[3].sign(junk.signed_payload()))
    directory = server.collect_keys([*advertisements[:2], junk, *advertisements[3:]])
    assert "not a usable X25519 public key" in server.rejected[3]
    assert len(directory.advertisements) == 4


def test_sparse_graph_needs_a_majority_of_confirmations() -> None:
    """With k + 1 holders t is small, so t signatures alone would let a server confirm two sets."""
    config = SecAggConfig("sparse/consistency", tuple(range(20)), LENGTH, threshold=3, neighbours=4)
    assert config.confirmation_quorum == 11
    identities, enrolled = enrol_hubs(config.hub_ids)
    server = ServerSession(config, enrolled)
    hubs = {hub: ClientSession(config, hub, identities[hub], enrolled) for hub in config.hub_ids}
    directory = server.collect_keys(hub.advertise_keys() for hub in hubs.values())
    deliveries = server.route_shares(hub.share_keys(directory) for hub in hubs.values())
    survivors = server.collect_masked(hub.masked_input(deliveries[h], np.ones(LENGTH)) for h, hub in hubs.items())
    request = server.collect_confirmations(hub.confirm_survivors(survivors) for hub in hubs.values())
    split_view = dataclasses.replace(request, confirmations=request.confirmations[:10])
    with pytest.raises(ThresholdError, match="11 needed"):
        hubs[0].unmask(split_view)
