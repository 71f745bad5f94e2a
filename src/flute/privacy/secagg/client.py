"""The hub's side of secure aggregation as an explicit state machine (URS-2, URS-14/15).

Stages, each a method taking the server's last message and returning the hub's reply:
advertise_keys -> share_keys -> masked_input -> confirm_survivors -> unmask.
The session holds only this round's ephemeral secrets; it never does I/O. Before
revealing anything a hub checks signatures, round binding and that the server asks
for disjoint sets: it reveals mask-seed shares only of hubs in the survivor set that
at least t hubs signed, and key shares only of hubs outside it, once.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum, auto

import numpy as np
import numpy.typing as npt
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from flute.privacy.secagg import shamir
from flute.privacy.secagg.config import SecAggConfig
from flute.privacy.secagg.errors import (
    AuthenticationError,
    ConfigError,
    InputError,
    MalformedMessageError,
    ProtocolError,
    ThresholdError,
)
from flute.privacy.secagg.identity import check_advertisement, enrolled_key
from flute.privacy.secagg.keys import RoundKeyPair, derive_pair_key, verify
from flute.privacy.secagg.messages import (
    EncryptedShares,
    KeyAdvertisement,
    KeyDirectory,
    MaskedInput,
    ShareDelivery,
    SurvivorConfirmation,
    SurvivorList,
    UnmaskRequest,
    UnmaskResponse,
    advertisement_payload,
    survivors_payload,
)
from flute.privacy.secagg.prg import MaskExpander
from flute.privacy.secagg.stages import StageTracker
from flute.privacy.secagg.wire import Reader, Writer, read_id_map, write_id_map

PAIRWISE_MASK = "pairwise-mask"
SHARE_ENCRYPTION = "share-encryption"
_SHARE_TAG = b"secagg.share-plaintext"
_STATE_TAG = b"secagg.hub-state"
_NONCE_BYTES = 12


class ClientStage(Enum):
    ADVERTISE = auto()
    SHARE = auto()
    MASK = auto()
    CONFIRM = auto()
    UNMASK = auto()
    DONE = auto()


@dataclass(frozen=True)
class HeldShares:
    """The two shares a hub holds for one peer (or itself)."""

    key_share: int
    seed_share: int


class ClientSession:
    """One hub's participation in one round."""

    def __init__(
        self,
        config: SecAggConfig,
        hub_id: int,
        identity: Ed25519PrivateKey,
        enrolled: Mapping[int, Ed25519PublicKey],
    ) -> None:
        if hub_id not in config.hub_ids:
            raise ConfigError(f"hub {hub_id} is not invited to round {config.round_id!r}")
        self.config = config
        self.hub_id = hub_id
        self._identity = identity
        self._enrolled = enrolled
        self._stages = StageTracker(f"hub {hub_id}", ClientStage.ADVERTISE)
        self._cipher_keys = RoundKeyPair.generate()
        self._mask_keys = RoundKeyPair.generate()
        self._seed = os.urandom(shamir.SECRET_BYTES)
        self._peers: dict[int, KeyAdvertisement] = {}
        self._held: dict[int, HeldShares] = {}
        self._confirmed_survivors: tuple[int, ...] = ()
        self.clipped_values = 0

    @property
    def stage(self) -> ClientStage:
        return self._stages.current

    def advertise_keys(self) -> KeyAdvertisement:
        with self._stages.step("advertise_keys", ClientStage.ADVERTISE, ClientStage.SHARE):
            cipher_public, mask_public = self._cipher_keys.public_bytes(), self._mask_keys.public_bytes()
            payload = advertisement_payload(self.hub_id, self.config.round_id, cipher_public, mask_public)
            return KeyAdvertisement(
                self.hub_id, self.config.round_id, cipher_public, mask_public, self._identity.sign(payload)
            )

    def share_keys(self, directory: KeyDirectory) -> EncryptedShares:
        """Verify every advertised key, then Shamir-share both secrets to the share holders."""
        with self._stages.step("share_keys", ClientStage.SHARE, ClientStage.MASK):
            self._check_round(directory.round_id, "key directory")
            self._peers = self._verified_advertisements(directory)
            holders = set(self._peers)
            if len(holders) < self.config.threshold:
                raise ThresholdError(
                    f"hub {self.hub_id}: only {len(holders)} of its share holders advertised keys, "
                    f"threshold is {self.config.threshold}; aborting before sharing anything"
                )
            key_shares = shamir.split(self._mask_keys.private_bytes(), holders, self.config.threshold)
            seed_shares = shamir.split(self._seed, holders, self.config.threshold)
            self._held[self.hub_id] = HeldShares(key_shares[self.hub_id], seed_shares[self.hub_id])
            ciphertexts = {
                holder: self._encrypt_shares(holder, HeldShares(key_shares[holder], seed_shares[holder]))
                for holder in holders - {self.hub_id}
            }
            return EncryptedShares(self.hub_id, self.config.round_id, ciphertexts)

    def masked_input(self, delivery: ShareDelivery, values: npt.NDArray[np.generic]) -> MaskedInput:
        """Store the neighbours' shares, then return encode(x) + PRG(b) +/- pairwise masks.

        The hub masks with exactly the neighbours whose shares reached it; the server
        routed shares symmetrically, so both ends of every pair agree.
        """
        with self._stages.step("masked_input", ClientStage.MASK, ClientStage.CONFIRM):
            self._check_round(delivery.round_id, "share delivery")
            if delivery.recipient != self.hub_id:
                raise ProtocolError(f"hub {self.hub_id} received shares addressed to hub {delivery.recipient}")
            for sender, ciphertext in delivery.ciphertexts.items():
                self._held[sender] = self._decrypt_shares(sender, ciphertext)
            paired = sorted(set(delivery.ciphertexts))
            if len(paired) + 1 < self.config.threshold:
                raise ThresholdError(
                    f"hub {self.hub_id}: only {len(paired)} neighbours shared keys, threshold is "
                    f"{self.config.threshold}; aborting before sending a masked input"
                )
            if values.shape != (self.config.vector_length,):
                raise InputError(
                    f"hub {self.hub_id}: input has shape {values.shape}, round {self.config.round_id!r} "
                    f"expects ({self.config.vector_length},)"
                )
            encoded = self.config.encoding.encode(values)
            self.clipped_values = encoded.clipped
            masked = encoded.values
            seeds = {peer: self._pair_key(self._mask_keys, peer, self._peers[peer].mask_public, PAIRWISE_MASK) for peer in paired}
            MaskExpander(self.config.vector_length).apply(
                masked,
                added=[self._seed, *(seeds[peer] for peer in paired if peer > self.hub_id)],
                subtracted=[seeds[peer] for peer in paired if peer < self.hub_id],
            )
            return MaskedInput(self.hub_id, self.config.round_id, masked)

    def confirm_survivors(self, survivors: SurvivorList) -> SurvivorConfirmation:
        """Sign the survivor set so other hubs can check everyone was told the same one."""
        with self._stages.step("confirm_survivors", ClientStage.CONFIRM, ClientStage.UNMASK):
            self._check_round(survivors.round_id, "survivor list")
            members = tuple(sorted(set(survivors.survivors)))
            if len(members) != len(survivors.survivors) or not set(members) <= set(self.config.hub_ids):
                raise ProtocolError(f"survivor list {list(survivors.survivors)} has duplicates or uninvited hubs")
            if self.hub_id not in members:
                raise ProtocolError(f"hub {self.hub_id} is asked to confirm a survivor list that omits it")
            if len(members) < self.config.confirmation_quorum:
                raise ThresholdError(
                    f"only {len(members)} survivors, {self.config.confirmation_quorum} needed to confirm them; "
                    f"refusing to continue"
                )
            self._confirmed_survivors = members
            signature = self._identity.sign(survivors_payload(self.config.round_id, members))
            return SurvivorConfirmation(self.hub_id, self.config.round_id, signature)

    def unmask(self, request: UnmaskRequest) -> UnmaskResponse:
        """Reveal seed shares of survivors and key shares of dropped hubs, never both for one hub."""
        with self._stages.step("unmask", ClientStage.UNMASK, ClientStage.DONE):
            self._check_round(request.round_id, "unmask request")
            survivors = tuple(sorted(set(request.survivors)))
            if survivors != self._confirmed_survivors:
                raise AuthenticationError(
                    f"hub {self.hub_id}: unmask request names survivors {list(survivors)}, "
                    f"but the hub confirmed {list(self._confirmed_survivors)}"
                )
            dropped = set(request.dropped)
            if dropped & set(survivors):
                raise AuthenticationError(
                    f"hub {self.hub_id}: hubs {sorted(dropped & set(survivors))} are listed both as survivors and "
                    f"dropped; revealing both shares would unmask their individual inputs"
                )
            self._check_confirmations(request.confirmations, survivors)
            return UnmaskResponse(
                self.hub_id,
                self.config.round_id,
                seed_shares={
                    hub: shamir.share_to_bytes(self._held[hub].seed_share) for hub in survivors if hub in self._held
                },
                key_shares={
                    hub: shamir.share_to_bytes(self._held[hub].key_share)
                    for hub in sorted(dropped)
                    if hub in self._held
                },
            )

    def save_state(self) -> bytes:
        """Snapshot of this round's state, for engines that restart the hub process between stages.

        It holds the round's secret keys and the shares entrusted to this hub: keep it on
        the hub (e.g. its Flower context state), never send it anywhere.
        """
        writer = Writer(_STATE_TAG).blob(self.config.to_bytes()).u64(self.hub_id)
        writer.text(self._stages.current.name).text(self._stages.abort_reason or "")
        writer.blob(self._cipher_keys.private_bytes()).blob(self._mask_keys.private_bytes()).blob(self._seed)
        write_id_map(writer, {hub: advertisement.to_bytes() for hub, advertisement in self._peers.items()})
        write_id_map(
            writer,
            {
                hub: shamir.share_to_bytes(held.key_share) + shamir.share_to_bytes(held.seed_share)
                for hub, held in self._held.items()
            },
        )
        return writer.u64_list(self._confirmed_survivors).u64(self.clipped_values).to_bytes()

    @classmethod
    def restore(
        cls, state: bytes, identity: Ed25519PrivateKey, enrolled: Mapping[int, Ed25519PublicKey]
    ) -> ClientSession:
        """The session `save_state` captured, continuing at the stage where it stopped."""
        reader = Reader(state, _STATE_TAG)
        session = cls(SecAggConfig.from_bytes(reader.blob()), reader.u64(), identity, enrolled)
        stage_name, abort_reason = reader.text(), reader.text()
        if stage_name not in ClientStage.__members__:
            raise MalformedMessageError(f"saved hub state names unknown stage {stage_name!r}")
        session._stages.current = ClientStage[stage_name]
        session._stages.abort_reason = abort_reason or None
        session._cipher_keys = RoundKeyPair.from_private_bytes(reader.blob())
        session._mask_keys = RoundKeyPair.from_private_bytes(reader.blob())
        session._seed = reader.blob()
        session._peers = {hub: KeyAdvertisement.from_bytes(raw) for hub, raw in read_id_map(reader).items()}
        size = shamir.SHARE_BYTES
        session._held = {
            hub: HeldShares(shamir.share_from_bytes(raw[:size]), shamir.share_from_bytes(raw[size:]))
            for hub, raw in read_id_map(reader).items()
        }
        session._confirmed_survivors = reader.u64_list()
        session.clipped_values = reader.u64()
        reader.finish()
        return session

    def _check_round(self, round_id: str, what: str) -> None:
        if round_id != self.config.round_id:
            raise AuthenticationError(
                f"hub {self.hub_id}: {what} is for round {round_id!r}, this session is round {self.config.round_id!r}"
            )

    def _verified_advertisements(self, directory: KeyDirectory) -> dict[int, KeyAdvertisement]:
        """Advertisements of this hub's share holders, each signed for this round; any fault aborts.

        Only holders' keys are ever used, so with a sparse graph a hub verifies k + 1
        signatures rather than n.
        """
        holders = self.config.graph.share_holders(self.hub_id)
        accepted: dict[int, KeyAdvertisement] = {}
        for advertisement in directory.advertisements:
            if advertisement.hub_id not in holders:
                continue
            check_advertisement(advertisement, self.config, self._enrolled)
            if advertisement.hub_id in accepted:
                raise AuthenticationError(f"key directory lists hub {advertisement.hub_id} twice")
            accepted[advertisement.hub_id] = advertisement
        own = accepted.get(self.hub_id)
        if own is None or (own.cipher_public, own.mask_public) != (
            self._cipher_keys.public_bytes(),
            self._mask_keys.public_bytes(),
        ):
            raise AuthenticationError(f"key directory omits or alters hub {self.hub_id}'s own advertisement")
        return accepted

    def _pair_key(self, keys: RoundKeyPair, peer: int, peer_public: bytes, purpose: str) -> bytes:
        return derive_pair_key(keys, peer_public, purpose, self.config.round_id, self.hub_id, peer)

    def _share_cipher(self, peer: int) -> AESGCM:
        return AESGCM(self._pair_key(self._cipher_keys, peer, self._peers[peer].cipher_public, SHARE_ENCRYPTION))

    def _share_context(self, sender: int, recipient: int) -> bytes:
        return Writer(_SHARE_TAG).text(self.config.round_id).u64(sender).u64(recipient).to_bytes()

    def _encrypt_shares(self, recipient: int, shares: HeldShares) -> bytes:
        plaintext = (
            Writer(_SHARE_TAG)
            .blob(shamir.share_to_bytes(shares.key_share))
            .blob(shamir.share_to_bytes(shares.seed_share))
            .to_bytes()
        )
        nonce = os.urandom(_NONCE_BYTES)
        context = self._share_context(self.hub_id, recipient)
        return nonce + self._share_cipher(recipient).encrypt(nonce, plaintext, context)

    def _decrypt_shares(self, sender: int, ciphertext: bytes) -> HeldShares:
        if sender not in self.config.graph.neighbours(self.hub_id) or sender not in self._peers:
            raise AuthenticationError(f"hub {self.hub_id} received shares from hub {sender}, which is not a neighbour")
        context = self._share_context(sender, self.hub_id)
        try:
            plaintext = self._share_cipher(sender).decrypt(
                ciphertext[:_NONCE_BYTES], ciphertext[_NONCE_BYTES:], context
            )
            reader = Reader(plaintext, _SHARE_TAG)
            shares = HeldShares(shamir.share_from_bytes(reader.blob()), shamir.share_from_bytes(reader.blob()))
            reader.finish()
        except (InvalidTag, ValueError, MalformedMessageError) as exc:
            raise AuthenticationError(
                f"hub {self.hub_id}: shares from hub {sender} fail decryption or decoding"
            ) from exc
        return shares

    def _check_confirmations(self, confirmations: tuple[SurvivorConfirmation, ...], survivors: tuple[int, ...]) -> None:
        """Require a quorum of valid survivor signatures on exactly this set (stops once reached)."""
        quorum = self.config.confirmation_quorum
        payload = survivors_payload(self.config.round_id, survivors)
        signers: set[int] = set()
        for confirmation in confirmations:
            if len(signers) == quorum:
                return
            if confirmation.hub_id not in survivors or confirmation.hub_id in signers:
                raise AuthenticationError(
                    f"confirmation from hub {confirmation.hub_id} is duplicated or not a survivor"
                )
            self._check_round(confirmation.round_id, f"confirmation of hub {confirmation.hub_id}")
            verify(
                enrolled_key(self._enrolled, confirmation.hub_id),
                confirmation.signature,
                payload,
                f"survivor confirmation of hub {confirmation.hub_id}",
            )
            signers.add(confirmation.hub_id)
        if len(signers) < quorum:
            raise ThresholdError(
                f"only {len(signers)} hubs confirmed the survivor set, {quorum} needed; hub {self.hub_id} reveals nothing"
            )

