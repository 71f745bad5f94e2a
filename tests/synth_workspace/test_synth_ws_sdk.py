"""Synthetic data through the researcher SDK over real HTTP on loopback (F-IMSD-1/2/10/12/15/16,
NF-IMSD-5/7): a granted researcher saves a draft, trains over the coordinator's three embedded
hospitals as a background job (DP, ledgers charged), samples a dataset version under conditions,
downloads it, and reads its evaluation report once the data owner has evaluated it; another
researcher can neither train without a grant nor see those datasets."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi import FastAPI

import flute
from flute.coordinator.registry import Registry
from flute.governance.access import AccessDecision
from flute.governance.catalogue import DatasetDeclaration, DatasetMetadata, VariableAvailability
from flute.governance.documents import PolicyKind, current_policy
from flute.governance.rbac import Role
from flute.sdk import FluteApiError
from flute.synth.workspace.service import evaluate_dataset
from flute.synth.workspace.store import Reference, SynthWorkspace

from governance_ui.ui_support import live_server  # noqa: F401 - the fixture

from hub_ledgers import set_budgets

from .conftest import budget, real_split

STUDY = "synth-sdk"
VARIABLES = ["ageAtBiopsy", "psa", "pirads"]
PASSWORD = "a long enough passphrase 7"
pytestmark = pytest.mark.slow


def api_token(context: object, username: str, org: str) -> str:
    identity = context.identity  # type: ignore[attr-defined]
    identity.create_user(username, org, frozenset({Role.RESEARCHER}), PASSWORD)
    pair = identity.login(username, PASSWORD, None, "127.0.0.1")
    return str(identity.create_api_token(pair.principal, "sdk")[1])


def grant(registry: Registry, researcher: str, hubs: list[str]) -> None:
    """Every hub approves the researcher's access request for the study."""
    for kind in PolicyKind:
        registry.accept_policy(researcher, kind, current_policy(kind).version)
    for hub in hubs:
        declaration = DatasetDeclaration("biopsies", "Biopsy cohort", "Men with MRI before biopsy", "research only", f"dpo@{hub}.example")
        registry.publish(hub, [DatasetMetadata(hub, declaration, "100-499", tuple(VariableAvailability(v, "100%") for v in VARIABLES), None, datetime.now(UTC))], "steward")
        request = registry.request_access(study=STUDY, researcher=researcher, researcher_org="uni", hub=hub, dataset="biopsies",
                                          fields=VARIABLES, purpose="synthetic data", epsilon=2.0, delta=1e-5)
        registry.record_decision(hub, AccessDecision(request.request_id, True, tuple(VARIABLES), 2.0, 1e-5, "", "dpo", datetime.now(UTC)))


def test_researcher_sdk_trains_samples_and_reads_reports(hub_homes: list[Path], tmp_path: Path, live_server: Callable[[FastAPI], str]) -> None:  # noqa: F811
    from flute.coordinator.app import create_app
    from flute.coordinator.store import open_coordinator_engine

    set_budgets(hub_homes, STUDY, 2.0)
    home = tmp_path / "coordinator"
    home.mkdir()
    open_coordinator_engine(home, create=True).dispose()
    app = create_app(home, hub_homes=hub_homes)
    context = app.state.flute_context
    names = sorted(h.name for h in hub_homes)
    for org in (*names, "uni"):
        context.identity.ensure_organisation(org, org)
    grant(Registry(context.engine, context.audit), "researcher-1", names)
    base = live_server(app)
    client = flute.connect(base, api_token(context, "researcher-1", "uni"))
    other = flute.connect(base, api_token(context, "researcher-2", "uni"))

    assert "marginal" in {g["name"] for g in client.synth.generators()}
    assert client.synth.save_draft("marginal", selection_share=0.3) == {"selection_share": 0.3}
    with pytest.raises(FluteApiError, match=r"HTTP 400.*unknown hyperparameter"):
        client.synth.save_draft("marginal", depth=2)
    with pytest.raises(FluteApiError, match=r"HTTP 403.*no approved access request of 'researcher-2'"):
        other.synth.train(STUDY, VARIABLES, epsilon=1.0)

    job = client.synth.train(STUDY, VARIABLES, epsilon=1.0, from_draft=True, name="sdk-gen")
    finished = job.wait(poll_s=0.2, progress=False)
    assert finished.state == "succeeded" and job.saved_generator == "sdk-gen:1"
    for hub_home in hub_homes:
        assert budget(hub_home, STUDY).epsilon_spent == pytest.approx(1.0, rel=1e-6)

    dataset = client.synth.sample("sdk-gen", 300, where="cspca=1,pirads in 4|5", seed=2, name="sdk-data")
    assert (dataset.reference, dataset.rows, dataset.epsilon, dataset.hyperparameters["selection_share"]) == ("sdk-data:1", 300, pytest.approx(1.0), 0.3)
    frame = client.synth.download(dataset, tmp_path / "downloaded")
    assert len(frame) == 300 and (frame["csPCa"] == 1).all() and frame["pirads"].isin([4, 5]).all()
    assert "sdk-data:1" in client.synth.datasets()._repr_html_() and "sdk-gen:1" in client.synth.jobs()._repr_html_()
    assert len(other.synth.datasets()) == 0 and len(other.synth.jobs()) == 0
    with pytest.raises(FluteApiError, match=r"HTTP 404"):
        other.synth.download(dataset, tmp_path / "stolen")
    with pytest.raises(FluteApiError, match=r"HTTP 409.*has not been evaluated yet"):
        client.synth.report_html(dataset)

    train, holdout = real_split(hub_homes, VARIABLES, STUDY, tmp_path)
    with SynthWorkspace.open(home / "synth") as workspace:  # the data owner evaluates against real rows
        evaluate_dataset(workspace, Reference("sdk-data", 1), train, holdout, user="owner")
    assert client.synth.report_html(dataset).count("data:image/png;base64,") == 4
    assert client.synth.datasets()[0].evaluation is not None

    usage = {u["user"]: u for u in client.synth.usage()}
    assert (usage["researcher-1"]["trainings"], usage["researcher-1"]["rows_generated"]) == (1, 300)
    assert client.synth.reset_draft("marginal")["selection_share"] == 0.25 and client.synth.draft("marginal")["draft"] is None
    client.close()
    other.close()
