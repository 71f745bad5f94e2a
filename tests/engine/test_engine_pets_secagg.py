"""Secure aggregation inside the engine (URS-2, URS-14/15, F-SRS-10, F-PIL-11): the same model as
plaintext, dropouts mid-round, and what crosses from the hubs to the coordinator."""

from __future__ import annotations

import numpy as np
import pytest

from flute.engine.apps import client_app, server_app
from flute.engine.embedded import HubBinding, run_embedded, study_run_config
from flute.engine.flower import ClientApp, Context, Message
from flute.engine.grid import HubFault
from flute.engine.pet_records import SecAggMessage, is_array_free
from flute.engine.sources import InMemorySource
from flute.engine.workflow import SECURE_SUM_SITE
from flute.learn.logistic import LogisticObjective, newton_sums
from flute.privacy.secagg import SecAggConfig, enrol_hubs, run_sessions

from .engine_inputs import HUB_NAMES, make_spec, run_study, synthetic_hubs

SECAGG = {"mode": "secagg"}


class RecordingClientApp:
    """The hubs' ClientApp, recording every reply that goes back to the coordinator."""

    def __init__(self, app: ClientApp) -> None:
        self.app = app
        self.replies: list[tuple[str, Message]] = []

    def __call__(self, message: Message, context: Context) -> Message:
        reply = self.app(message, context)
        self.replies.append((message.metadata.message_type, reply))
        return reply


def test_secagg_study_gives_the_plaintext_model_to_fixed_point_precision() -> None:
    tables = synthetic_hubs()
    plain = run_study(tables, make_spec(evaluation={"cv_folds": 2}))
    secure = run_study(tables, make_spec(pets=SECAGG, evaluation={"cv_folds": 2}))
    for a, b in zip(plain.outcomes, secure.outcomes):
        np.testing.assert_allclose(a.model.weights, b.model.weights, atol=1e-6)
        np.testing.assert_allclose(a.model.preprocessing.means, b.model.preprocessing.means, rtol=1e-9)
    # evaluation histograms exist only as the sum over hubs, equal to the sum of plaintext ones
    assert set(secure.cv_site_summaries()) == {SECURE_SUM_SITE}
    assert secure.cv_pooled_summary().n == plain.cv_pooled_summary().n


def test_coordinator_receives_no_hub_array_only_protocol_messages() -> None:
    tables = synthetic_hubs()
    recorder = RecordingClientApp(client_app)
    hubs = [HubBinding(name, source=InMemorySource(table)) for name, table in zip(HUB_NAMES, tables)]
    run_embedded(server_app, recorder, hubs, study_run_config(make_spec(pets=SECAGG, training={"rounds": 3})))  # type: ignore[arg-type]
    kinds = {kind for kind, _ in recorder.replies}
    assert kinds == {"query.census", "query.summary", "train.newton", "query.secagg_share", "query.secagg_mask", "query.secagg_confirm", "query.secagg_unmask"}
    for kind, reply in recorder.replies:
        assert not reply.has_error(), reply.error.reason
        assert is_array_free(reply.content), f"{kind} reply carries an array record"
        if kind != "query.census":
            SecAggMessage.from_record(reply.content)  # every other answer is a protocol message


def test_hub_refuses_to_answer_in_the_clear_under_secagg() -> None:
    """A coordinator that skips secure aggregation gets nothing: the hubs enforce the PET."""
    from flute.engine.hub_steps import HubRefusal
    from flute.engine.pet_steps import require_clear_answers_allowed

    with pytest.raises(HubRefusal, match="secure aggregation"):
        require_clear_answers_allowed(make_spec(pets=SECAGG), "Newton sums")


@pytest.mark.slow
def test_hub_dropping_out_mid_round_still_completes_above_threshold() -> None:
    tables = synthetic_hubs()
    # hub-c: census (1) + preprocessing round (5 messages) + round-1 advertisement (1), then silent
    result = run_study(tables, make_spec(pets=SECAGG, federation={"retries": 0}), faults={"hub-c": HubFault("silent", after=7)})
    assert result.dropped_hubs == ("hub-c",)
    assert result.final_model.converged
    assert result.final_model.trained_on == ("hub-a", "hub-b")


def test_reconstruction_from_a_cleartext_update_versus_the_secure_sum() -> None:
    """Item 8 demonstration (docs/threat-model.md): a hub with one record in a round gives its
    record away in a cleartext Newton answer (x = gradient[1:] / gradient[0]); under secure
    aggregation the aggregator holds a uniformly masked vector and only learns the sum."""
    record, label = np.array([[0.7, -1.2, 2.5]]), np.array([1])
    sums = newton_sums(np.array([0.1, 0.2, -0.3, 0.4]), record, label, LogisticObjective())
    np.testing.assert_allclose(sums.gradient[1:] / sums.gradient[0], record[0])  # cleartext: exact inversion

    others = np.random.default_rng(1).normal(size=(2, 4))
    inputs = {0: sums.gradient, 1: others[0], 2: others[1]}
    config = SecAggConfig("demo/round-1", (0, 1, 2), 4, 2)
    identities, enrolled = enrol_hubs(config.hub_ids)
    result = run_sessions(inputs, config, identities, enrolled)
    np.testing.assert_allclose(result.total, sums.gradient + others.sum(axis=0), atol=1e-6)
    # what the aggregator received from hub 0 does not decode to hub 0's gradient
    from flute.privacy.secagg import ClientSession, ServerSession

    server, hubs = ServerSession(config, enrolled), {h: ClientSession(config, h, identities[h], enrolled) for h in config.hub_ids}
    directory = server.collect_keys(hubs[h].advertise_keys() for h in hubs)
    deliveries = server.route_shares(hubs[h].share_keys(directory) for h in hubs)
    masked = hubs[0].masked_input(deliveries[0], inputs[0]).values
    assert not np.allclose(config.encoding.decode(masked), sums.gradient, atol=1.0)
