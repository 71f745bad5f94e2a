"""Administration routes (F-PIL-20): organisations by the platform, accounts by the admins of
an organisation - only their own, only roles they may grant, one-time secrets for new
accounts, and disabling an account ends its access."""

from __future__ import annotations

from fastapi.testclient import TestClient

from flute.governance import totp
from flute.governance.rbac import Role

from .conftest import Node, bearer


def test_platform_admin_creates_organisations_and_their_first_admin(node: Node) -> None:
    root = node.add_user("root", "platform", Role.PLATFORM_ADMIN)
    client = TestClient(node.app())
    token = node.login(client, root)["access_token"]
    assert client.post("/orgs", json={"id": "hospital-a", "name": "Hospital A"}, headers=bearer(token)).status_code == 201
    assert {"id": "hospital-a", "name": "Hospital A"} in client.get("/orgs", headers=bearer(token)).json()
    created = client.post("/orgs/hospital-a/users", json={"username": "dpo-a", "roles": ["data_owner_admin"]}, headers=bearer(token))
    assert created.status_code == 201
    body = created.json()
    assert body["totp_uri"].startswith("otpauth://totp/") and len(body["password"]) >= 24
    login = client.post("/auth/login", json={"username": "dpo-a", "password": body["password"], "totp": totp.current_code(body["totp_secret"], node.clock.now)})
    assert login.status_code == 200


def test_data_owner_admins_manage_only_their_organisation_and_grantable_roles(node: Node) -> None:
    admin = node.add_user("dpo-a", "hospital-a", Role.DATA_OWNER_ADMIN)
    node.identity.ensure_organisation("hospital-b", "Hospital B")
    client = TestClient(node.app())
    token = node.login(client, admin)["access_token"]
    steward = client.post("/orgs/hospital-a/users", json={"username": "steward-a", "roles": ["data_steward"]}, headers=bearer(token))
    assert steward.status_code == 201 and steward.json()["totp_secret"] is None
    assert client.post("/orgs/hospital-b/users", json={"username": "spy", "roles": ["researcher"]}, headers=bearer(token)).status_code == 403
    escalation = client.post("/orgs/hospital-a/users", json={"username": "boss", "roles": ["platform_admin"]}, headers=bearer(token))
    assert escalation.status_code == 403 and "may not grant platform_admin" in escalation.json()["detail"]
    assert client.post("/orgs/hospital-a/users", json={"username": "x-user", "roles": ["wizard"]}, headers=bearer(token)).status_code == 400
    assert client.post("/orgs/hospital-a/users", json={"username": "steward-a", "roles": ["researcher"]}, headers=bearer(token)).status_code == 400
    assert [u["username"] for u in client.get("/orgs/hospital-a/users", headers=bearer(token)).json()] == ["dpo-a", "steward-a"]
    assert client.get("/orgs/hospital-b/users", headers=bearer(token)).status_code == 403
    assert client.post("/orgs", json={"id": "evil-org", "name": "x"}, headers=bearer(token)).status_code == 403

    steward_login = client.post("/auth/login", json={"username": "steward-a", "password": steward.json()["password"]}).json()
    assert client.get("/auth/me", headers=bearer(steward_login["access_token"])).status_code == 200
    assert client.post("/orgs/hospital-a/users/steward-a/disable", headers=bearer(token)).status_code == 204
    assert client.get("/auth/me", headers=bearer(steward_login["access_token"])).status_code == 401
    assert client.post("/orgs/hospital-a/users/nobody/disable", headers=bearer(token)).status_code == 404
    assert client.post("/orgs/hospital-a/users/steward-a/enable", headers=bearer(token)).status_code == 204
