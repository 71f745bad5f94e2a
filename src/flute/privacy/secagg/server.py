"""The aggregator's side of secure aggregation as an explicit state machine.

Stages: collect_keys -> route_shares -> collect_masked -> collect_confirmations ->
collect_unmask. The server relays encrypted shares it cannot read, learns only the
sum of the survivors' inputs, and aborts with ThresholdError as soon as fewer than t
hubs are left (before asking anyone to reveal anything). A message that fails a check
excludes its sender from the round and is recorded in `rejected` with the reason, so
one faulty or forged hub cannot silently corrupt the sum nor stall the others.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import Enum, auto

import numpy as np
import numpy.typing as npt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from flute.privacy.secagg import shamir
from flute.privacy.secagg.client import PAIRWISE_MASK
from flute.privacy.secagg.config import SecAggConfig
from flute.privacy.secagg.errors import AuthenticationError, SecAggError, ThresholdError
from flute.privacy.secagg.identity import check_advertisement, enrolled_key
from flute.privacy.secagg.keys import RoundKeyPair, check_round_public_key, derive_pair_key, verify
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
    survivors_payload,
)
from flute.privacy.secagg.prg import MaskExpander
from flute.privacy.secagg.stages import StageTracker


class ServerStage(Enum):
    KEYS = auto()
    SHARES = auto()
    MASKED = auto()
    CONFIRMATIONS = auto()
    UNMASK = auto()
    DONE = auto()


@dataclass(frozen=True)
class SecureSumResult:
    """The decoded sum and exactly which hubs' inputs it contains."""

    total: npt.NDArray[np.float64]
    contributors: tuple[int, ...]


class ServerSession:
    """The aggregator's view of one round."""

    def __init__(self, config: SecAggConfig, enrolled: Mapping[int, Ed25519PublicKey]) -> None:
        self.config = config
        self._enrolled = enrolled
        self._stages = StageTracker("aggregator", ServerStage.KEYS)
        self.rejected: dict[int, str] = {}
        self._advertisements: dict[int, KeyAdvertisement] = {}
        self._sharers: tuple[int, ...] = ()
        self._masked: dict[int, npt.NDArray[np.uint64]] = {}
        self._survivors: tuple[int, ...] = ()
        self._dropped: tuple[int, ...] = ()
        self._confirmed: tuple[int, ...] = ()

    @property
    def stage(self) -> ServerStage:
        return self._stages.current

    def collect_keys(self, advertisements: Iterable[KeyAdvertisement]) -> KeyDirectory:
        """Keep the validly signed advertisements; broadcast them to every hub that sent one."""
        with self._stages.step("collect_keys", ServerStage.KEYS, ServerStage.SHARES):
            for advertisement in advertisements:
                if not self._admissible(advertisement.hub_id, self.config.hub_ids, self._advertisements, "keys"):
                    continue
                try:
                    check_advertisement(advertisement, self.config, self._enrolled)
                    # once, here, so hubs need no trial key agreement per peer
                    check_round_public_key(advertisement.cipher_public, f"hub {advertisement.hub_id}'s cipher key")
                    check_round_public_key(advertisement.mask_public, f"hub {advertisement.hub_id}'s mask key")
                except AuthenticationError as exc:
                    self._reject(advertisement.hub_id, exc)
                    continue
                self._advertisements[advertisement.hub_id] = advertisement
            self._require_threshold(self._advertisements, "advertised keys")
            ordered = tuple(self._advertisements[hub] for hub in sorted(self._advertisements))
            return KeyDirectory(self.config.round_id, ordered)

    def route_shares(self, messages: Iterable[EncryptedShares]) -> dict[int, ShareDelivery]:
        """Forward each ciphertext to its recipient; returns one delivery per sharing hub."""
        with self._stages.step("route_shares", ServerStage.SHARES, ServerStage.MASKED):
            received: dict[int, EncryptedShares] = {}
            for message in messages:
                if not self._admissible(message.sender, self._advertisements, received, "shares"):
                    continue
                expected = (self.config.graph.share_holders(message.sender) & self._advertisements.keys()) - {
                    message.sender
                }
                if message.round_id != self.config.round_id or set(message.ciphertexts) != expected:
                    self._reject(
                        message.sender,
                        AuthenticationError(
                            f"shares of hub {message.sender} are for round {message.round_id!r} and hubs "
                            f"{sorted(message.ciphertexts)}; expected round {self.config.round_id!r} "
                            f"and {sorted(expected)}"
                        ),
                    )
                    continue
                received[message.sender] = message
            self._require_threshold(received, "shared their keys")
            self._sharers = tuple(sorted(received))
            return {
                recipient: ShareDelivery(
                    recipient,
                    self.config.round_id,
                    {
                        sender: received[sender].ciphertexts[recipient]
                        for sender in self._sharers
                        if recipient in received[sender].ciphertexts
                    },
                )
                for recipient in self._sharers
            }

    def collect_masked(self, inputs: Iterable[MaskedInput]) -> SurvivorList:
        """Keep masked inputs of hubs that shared keys; the survivor set goes out for signing."""
        with self._stages.step("collect_masked", ServerStage.MASKED, ServerStage.CONFIRMATIONS):
            for masked in inputs:
                if not self._admissible(masked.hub_id, self._sharers, self._masked, "a masked input"):
                    continue
                expected = (self.config.round_id, (self.config.vector_length,), np.dtype(np.uint64))
                found = (masked.round_id, masked.values.shape, masked.values.dtype)
                if found != expected:
                    self._reject(
                        masked.hub_id,
                        SecAggError(
                            f"masked input of hub {masked.hub_id} has (round, shape, dtype) {found}; expected {expected}"
                        ),
                    )
                    continue
                self._masked[masked.hub_id] = masked.values
            self._require_threshold(self._masked, "sent masked inputs")
            self._survivors = tuple(sorted(self._masked))
            self._dropped = tuple(hub for hub in self._sharers if hub not in self._masked)
            return SurvivorList(self.config.round_id, self._survivors)

    def collect_confirmations(self, confirmations: Iterable[SurvivorConfirmation]) -> UnmaskRequest:
        """Gather survivors' signatures on the survivor set; at least t are needed to go on."""
        with self._stages.step("collect_confirmations", ServerStage.CONFIRMATIONS, ServerStage.UNMASK):
            payload = survivors_payload(self.config.round_id, self._survivors)
            valid: dict[int, SurvivorConfirmation] = {}
            for confirmation in confirmations:
                if not self._admissible(confirmation.hub_id, self._survivors, valid, "a confirmation"):
                    continue
                try:
                    verify(
                        enrolled_key(self._enrolled, confirmation.hub_id),
                        confirmation.signature,
                        payload,
                        f"survivor confirmation of hub {confirmation.hub_id}",
                    )
                except AuthenticationError as exc:
                    self._reject(confirmation.hub_id, exc)
                    continue
                valid[confirmation.hub_id] = confirmation
            if len(valid) < self.config.confirmation_quorum:
                raise ThresholdError(
                    f"round {self.config.round_id!r}: only {len(valid)} hubs confirmed the survivor set, "
                    f"{self.config.confirmation_quorum} needed; aborting before anything is revealed"
                )
            self._confirmed = tuple(sorted(valid))
            return UnmaskRequest(
                self.config.round_id, self._survivors, self._dropped, tuple(valid[hub] for hub in self._confirmed)
            )

    def collect_unmask(self, responses: Iterable[UnmaskResponse]) -> SecureSumResult:
        """Reconstruct survivors' seeds and dropped hubs' keys, strip all masks, decode."""
        with self._stages.step("collect_unmask", ServerStage.UNMASK, ServerStage.DONE):
            seed_shares: dict[int, dict[int, int]] = {hub: {} for hub in self._survivors}
            key_shares: dict[int, dict[int, int]] = {hub: {} for hub in self._dropped}
            answered: dict[int, UnmaskResponse] = {}
            for response in responses:
                if not self._admissible(response.hub_id, self._confirmed, answered, "an unmask response"):
                    continue
                try:
                    revealed_seeds = self._parsed_shares(response.hub_id, response.seed_shares, self._survivors)
                    revealed_keys = self._parsed_shares(response.hub_id, response.key_shares, self._dropped)
                except AuthenticationError as exc:
                    self._reject(response.hub_id, exc)
                    continue
                answered[response.hub_id] = response
                for owner, share in revealed_seeds.items():
                    seed_shares[owner][response.hub_id] = share
                for owner, share in revealed_keys.items():
                    key_shares[owner][response.hub_id] = share
            self._require_threshold(answered, "answered the unmask request")
            needed_keys = {hub: shares for hub, shares in key_shares.items() if self._paired_survivors(hub)}
            for what, table in (("mask seed", seed_shares), ("mask key", needed_keys)):
                for hub, shares in table.items():
                    if len(shares) < self.config.threshold:
                        raise ThresholdError(
                            f"only {len(shares)} shares of hub {hub}'s {what} arrived, threshold is "
                            f"{self.config.threshold}; cannot unmask, aborting without a result"
                        )
            total = self._unmasked_total(seed_shares, needed_keys)
            return SecureSumResult(self.config.encoding.decode(total), self._survivors)

    def _unmasked_total(
        self, seed_shares: dict[int, dict[int, int]], key_shares: dict[int, dict[int, int]]
    ) -> npt.NDArray[np.uint64]:
        total = np.zeros(self.config.vector_length, dtype=np.uint64)
        for values in self._masked.values():
            np.add(total, values, out=total)
        added: list[bytes] = []
        subtracted = [shamir.combine(shares, self.config.threshold) for shares in seed_shares.values()]
        for dropped, shares in key_shares.items():
            mask_keys = RoundKeyPair.from_private_bytes(shamir.combine(shares, self.config.threshold))
            if mask_keys.public_bytes() != self._advertisements[dropped].mask_public:
                raise AuthenticationError(
                    f"shares of dropped hub {dropped}'s mask key reconstruct a key that does not match its "
                    f"advertisement; some hub returned a wrong share"
                )
            for survivor in self._paired_survivors(dropped):
                seed = derive_pair_key(
                    mask_keys,
                    self._advertisements[survivor].mask_public,
                    PAIRWISE_MASK,
                    self.config.round_id,
                    dropped,
                    survivor,
                )
                # the survivor added the mask if the dropped hub's id is larger, subtracted it otherwise
                (subtracted if dropped > survivor else added).append(seed)
        MaskExpander(self.config.vector_length).apply(total, added=added, subtracted=subtracted)
        return total

    def _paired_survivors(self, dropped: int) -> list[int]:
        """Survivors that masked with `dropped`: its neighbours that also shared keys."""
        return [hub for hub in self._survivors if hub in self.config.graph.neighbours(dropped)]

    def _parsed_shares(self, holder: int, revealed: dict[int, bytes], requested: tuple[int, ...]) -> dict[int, int]:
        parsed: dict[int, int] = {}
        for owner, share in revealed.items():
            if owner not in requested or holder not in self.config.graph.share_holders(owner):
                raise AuthenticationError(
                    f"hub {holder} revealed a share of hub {owner} that was not requested or not its to hold"
                )
            try:
                parsed[owner] = shamir.share_from_bytes(share)
            except ValueError as exc:
                raise AuthenticationError(f"hub {holder} sent a malformed share of hub {owner}: {exc}") from exc
        return parsed

    def _require_threshold(self, hubs: Mapping[int, object], what: str) -> None:
        if len(hubs) < self.config.threshold:
            raise ThresholdError(
                f"round {self.config.round_id!r}: only {len(hubs)} hubs {what}, threshold is "
                f"{self.config.threshold}; aborting before anything is revealed"
            )

    def _admissible(
        self, hub_id: int, eligible: Iterable[int] | Mapping[int, object], seen: Mapping[int, object], what: str
    ) -> bool:
        """True for the first message of a hub that took part in the previous stage; else record why not."""
        if hub_id in seen:
            self.rejected.setdefault(hub_id, f"sent {what} twice; the later copy was ignored")
            return False
        if hub_id not in eligible:
            self.rejected.setdefault(
                hub_id, f"sent {what} but is not invited or missed the previous stage; the message was ignored"
            )
            return False
        return True

    def _reject(self, hub_id: int, error: SecAggError) -> None:
        self.rejected[hub_id] = str(error)
