"""The hub's side of secure aggregation over the Message API (URS-2, URS-15, F-SRS-10).

Stage 1 rides on the additive request itself: the hub computes its vector, opens a
`ClientSession` for the announced round and answers with its signed key advertisement only. The
vector and the session state (the round's secret keys and the shares entrusted to the hub) stay in
the hub's Flower Context state between stages - on the hub, never in a message. Stages 2-5 are
the `query.secagg_*` messages. Before joining a round the hub checks that the announced
parameters are the ones its own spec allows, that its own name has the announced id, and it
takes every peer's identity key from its OWN enrolment list.
"""

from __future__ import annotations

from typing import Final

import numpy as np

from flute.engine.additive import INTEGER_ENCODING
from flute.engine.flower import ConfigRecord, Context, RecordDict
from flute.engine.hub_identity import ENROLMENT_KEY, hub_identity, parse_enrolment
from flute.engine.hub_steps import HubRefusal
from flute.engine.pet_records import PetMessageKind, RoundAnnouncement, SecAggMessage
from flute.engine.spec import StudySpec
from flute.privacy.secagg import ClientSession, FixedPoint, KeyDirectory, ShareDelivery, SurvivorList, UnmaskRequest

SECAGG_STATE: Final = "flute.secagg"


def float_encoding(spec: StudySpec) -> FixedPoint:
    """The fixed-point encoding of the study's real-valued sums."""
    options = spec.pets.secure_aggregation
    if options is None:
        raise HubRefusal(f"study {spec.study_id} does not use secure aggregation")
    return FixedPoint(clip_bound=options.clip_bound, scale_bits=options.scale_bits)


def start_round(spec: StudySpec, context: Context, announcement: RoundAnnouncement, vector: np.ndarray, hub: str) -> RecordDict:
    """Stage 1: keep `vector` and the new session in the hub's state; answer the advertisement."""
    config = announcement.config
    _check_parameters(spec, announcement, vector)
    enrolled = _enrolled(context, announcement.members)
    session = ClientSession(config, announcement.hub_id(hub), hub_identity(context.node_config), enrolled)
    advertisement = session.advertise_keys()
    context.state[SECAGG_STATE] = ConfigRecord(
        {
            "round-id": config.round_id,
            "members": list(announcement.members),
            "session": session.save_state(),
            "input": np.ascontiguousarray(vector).tobytes(),
            "dtype": vector.dtype.str,
        }
    )
    return SecAggMessage(config.round_id, advertisement.to_bytes()).to_record()


def continue_round(context: Context, kind: PetMessageKind, message: SecAggMessage) -> RecordDict:
    """Stages 2-5 of the round in the hub's state; the state is dropped after unmasking."""
    if SECAGG_STATE not in context.state.config_records:
        raise HubRefusal(f"{kind.value}: this hub has no secure-aggregation round in progress")
    saved = context.state.config_records[SECAGG_STATE]
    if saved["round-id"] != message.round_id:
        raise HubRefusal(f"{kind.value}: message is for round {message.round_id!r}, this hub is in round {saved['round-id']!r}")
    members = tuple(str(member) for member in saved["members"])  # type: ignore[union-attr]
    session = ClientSession.restore(bytes(saved["session"]), hub_identity(context.node_config), _enrolled(context, members))  # type: ignore[arg-type]
    if kind is PetMessageKind.SECAGG_SHARE:
        reply = session.share_keys(KeyDirectory.from_bytes(message.payload)).to_bytes()
    elif kind is PetMessageKind.SECAGG_MASK:
        vector = np.frombuffer(bytes(saved["input"]), dtype=np.dtype(str(saved["dtype"])))  # type: ignore[arg-type]
        reply = session.masked_input(ShareDelivery.from_bytes(message.payload), vector).to_bytes()
    elif kind is PetMessageKind.SECAGG_CONFIRM:
        reply = session.confirm_survivors(SurvivorList.from_bytes(message.payload)).to_bytes()
    elif kind is PetMessageKind.SECAGG_UNMASK:
        reply = session.unmask(UnmaskRequest.from_bytes(message.payload)).to_bytes()
    else:
        raise HubRefusal(f"{kind.value} is not a secure-aggregation stage")
    if kind is PetMessageKind.SECAGG_UNMASK:
        del context.state[SECAGG_STATE]
    else:
        updated = dict(saved.items())
        updated["session"] = session.save_state()
        if kind is PetMessageKind.SECAGG_MASK:
            updated["input"] = b""  # masked and sent: the hub no longer needs its clear vector
        context.state[SECAGG_STATE] = ConfigRecord(updated)
    return SecAggMessage(message.round_id, reply).to_record()


def _check_parameters(spec: StudySpec, announcement: RoundAnnouncement, vector: np.ndarray) -> None:
    options = spec.pets.secure_aggregation
    if options is None:
        raise HubRefusal(f"study {spec.study_id} does not use secure aggregation, but a secure-aggregation round was announced")
    config = announcement.config
    if not config.round_id.startswith(f"{announcement.run_nonce}/{spec.study_id}/"):
        raise HubRefusal(f"round {config.round_id!r} does not belong to study {spec.study_id}")
    if options.threshold is not None and config.threshold < options.threshold:
        raise HubRefusal(f"round threshold {config.threshold} is below the spec's pets.secagg.threshold {options.threshold}")
    if config.neighbours != options.neighbours:
        raise HubRefusal(f"round uses neighbours={config.neighbours}, the spec says {options.neighbours}")
    expected = INTEGER_ENCODING if vector.dtype.kind == "i" else float_encoding(spec)
    if config.encoding != expected:
        raise HubRefusal(f"round encoding {config.encoding} differs from the study's {expected}")
    largest = max(float(vector.max()), -float(vector.min()))  # two passes, no temporary copy
    if largest > expected.clip_bound:
        raise HubRefusal(
            f"this hub's sums reach {largest:g}, beyond the secure-aggregation clip bound {expected.clip_bound:g}, "
            "and would be summed wrongly; raise pets.secagg.clip_bound"
        )


def _enrolled(context: Context, members: tuple[str, ...]) -> dict[int, object]:
    enrolment = parse_enrolment(context.node_config.get(ENROLMENT_KEY), where="hub node config")
    missing = [name for name in members if name not in enrolment]
    if missing:
        raise HubRefusal(f"hubs {missing} are not in this hub's enrolment list; it will not aggregate with unknown parties")
    return {index: enrolment[name] for index, name in enumerate(members)}
