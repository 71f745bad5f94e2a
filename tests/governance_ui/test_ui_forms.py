"""The data owner's other forms, through the real app in process: declaring and publishing a
dataset, rejecting a request (a reason is required), revoking a grant, acknowledging an alert,
and the role policy on pages (a steward may read but not decide)."""

from __future__ import annotations

import re
from pathlib import Path

import pyotp
from fastapi.testclient import TestClient

from flute.governance.access import RequestStatus
from flute.governance.rbac import Role
from flute.hub.consent import ConsentRefused, ConsentRegister
from flute.hub.node import open_hub

from .ui_support import HUB, OWNER, OWNER_PASSWORD, build_world, file_request, ui_app


def _csrf(page: str) -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]{64})"', page)
    assert found, "every signed-in page carries the CSRF token"
    return found.group(1)


def test_owner_forms_and_steward_limits(tmp_path: Path) -> None:
    world = build_world(tmp_path)
    app = ui_app(world)
    rejected, approved = file_request(world.registry, study="study-x"), file_request(world.registry, study="study-y")
    owner = TestClient(app)
    code = pyotp.TOTP(world.owner_totp_secret).now()
    assert owner.post("/ui/login", data={"username": OWNER, "password": "wrong", "totp": code}).status_code == 401
    owner.post("/ui/login", data={"username": OWNER, "password": OWNER_PASSWORD, "totp": code})
    csrf = _csrf(owner.get("/ui/").text)

    page = owner.post("/ui/datasets", data={"csrf": csrf, "dataset": "mri-volumes", "title": "MRI volumes", "description": "",
                                            "conditions_of_use": "research only", "contact": "dpo@a", "coverage_start": "2018-01-01",
                                            "coverage_end": "2017-01-01"})
    assert "not saved" in page.text and "coverage starts 2018-01-01 after it ends 2017-01-01" in page.text
    page = owner.post("/ui/datasets", data={"csrf": csrf, "dataset": "mri-volumes", "title": "MRI volumes", "description": "",
                                            "conditions_of_use": "research only", "contact": "dpo@a", "open_access": "on"})
    assert "dataset mri-volumes saved" in page.text and "open to signed-in researchers" in page.text
    assert "dataset mri-volumes saved" not in owner.get("/ui/").text  # a flash message is shown once
    assert "call this number" not in owner.get("/ui/?message=call+this+number").text  # the URL cannot inject one
    page = owner.post("/ui/datasets/publish", data={"csrf": csrf})
    assert "published 2 dataset(s)" in page.text
    assert {entry.declaration.dataset for entry in world.registry.entries()} == {"cspca-biopsies", "mri-volumes"}

    page = owner.post(f"/ui/requests/{rejected.request_id}/decision", data={"csrf": csrf, "decision": "reject", "reason": ""})
    assert "a rejection must give the researcher a reason" in page.text
    owner.post(f"/ui/requests/{rejected.request_id}/decision", data={"csrf": csrf, "decision": "reject", "reason": "purpose outside our conditions"})
    assert world.registry.request(rejected.request_id).status is RequestStatus.REJECTED
    page = owner.post(f"/ui/requests/{approved.request_id}/decision",
                      data={"csrf": csrf, "decision": "approve", "fields": ["psa"], "epsilon": "1", "delta": "0"})
    assert f"request {approved.request_id} approved" in page.text
    with open_hub(world.home) as hub:
        register = ConsentRegister(hub.store, HUB, None)
        try:
            register.guard_study("study-x", ("psa",), "train.newton")
        except ConsentRefused:
            pass
        alert = register.alerts()[0]
    page = owner.post(f"/ui/alerts/{alert.id}/acknowledge", data={"csrf": csrf})
    assert f"alert {alert.id} acknowledged" in page.text
    page = owner.post(f"/ui/grants/{approved.request_id}/revoke", data={"csrf": csrf})
    assert f"grant {approved.request_id} revoked" in page.text and "revoked 20" in page.text
    assert owner.post("/ui/logout", data={"csrf": csrf}, follow_redirects=False).headers["location"] == "/ui/login"

    identity = app.state.flute_context.identity
    identity.create_user("steward-a", HUB, frozenset({Role.DATA_STEWARD}), "another long passphrase 9")
    steward = TestClient(app)
    steward.post("/ui/login", data={"username": "steward-a", "password": "another long passphrase 9"})
    assert steward.get("/ui/requests").status_code == 200
    third = file_request(world.registry, study="study-z")
    refused = steward.post(f"/ui/requests/{third.request_id}/decision",
                           data={"csrf": _csrf(steward.get("/ui/").text), "decision": "approve", "fields": ["psa"], "epsilon": "1"})
    assert refused.status_code == 403 and "access.decide is not permitted to data_steward" in refused.text
    assert steward.get("/ui/audit").status_code == 403
