"""Checks of hub identities: enrolled long-term Ed25519 keys and signed advertisements.

Hubs and the server run the same check on every key advertisement, so a forged key
(wrong signature), a key of an uninvited hub or one replayed from another round is
refused wherever it shows up (URS-15, NF-SRS-5).
"""

from __future__ import annotations

from collections.abc import Mapping

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from flute.privacy.secagg.config import SecAggConfig
from flute.privacy.secagg.errors import AuthenticationError
from flute.privacy.secagg.keys import verify
from flute.privacy.secagg.messages import KeyAdvertisement


def enrolled_key(enrolled: Mapping[int, Ed25519PublicKey], hub_id: int) -> Ed25519PublicKey:
    try:
        return enrolled[hub_id]
    except KeyError:
        raise AuthenticationError(f"hub {hub_id} has no enrolled identity key; enrol it before the round") from None


def check_advertisement(
    advertisement: KeyAdvertisement, config: SecAggConfig, enrolled: Mapping[int, Ed25519PublicKey]
) -> None:
    """Raise AuthenticationError unless the advertisement is from an invited hub, for this round, signed."""
    if advertisement.hub_id not in config.hub_ids:
        raise AuthenticationError(f"advertisement from hub {advertisement.hub_id}, which is not invited")
    if advertisement.round_id != config.round_id:
        raise AuthenticationError(
            f"advertisement of hub {advertisement.hub_id} is for round {advertisement.round_id!r}, "
            f"not {config.round_id!r} (replayed?)"
        )
    verify(
        enrolled_key(enrolled, advertisement.hub_id),
        advertisement.signature,
        advertisement.signed_payload(),
        f"key advertisement of hub {advertisement.hub_id}",
    )
