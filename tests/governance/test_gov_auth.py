"""Authentication: password policy and argon2 (NF-SRS-1), TOTP mandatory for admins (URS-3,
F-SRS-1), lockout and back-off, token expiry, refresh rotation and replay, idle timeout
(F-SRS-3), API tokens and logout - all through the real HTTP routes."""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from pg import PostgresServer

from flute.governance import passwords, totp
from flute.governance.audit import AuditEntry, iter_entries
from flute.governance.identity import IdentityError
from flute.governance.models import UserRecord
from flute.governance.passwords import PasswordRejected, check_policy
from flute.governance.rbac import Role

from .conftest import PASSWORD, TEST_POLICY, Node, bearer


@pytest.mark.parametrize(
    ("password", "rule"),
    [
        ("short pass1", "at least 12"),
        ("alice-has-a-long-password", "contains the username"),
        ("Password1234", "most common"),
        ("qwertyuiop!!!", "most common"),
        ("aaaaaaaaaaaaaaaa", "distinct characters"),
    ],
)
def test_password_policy_names_the_broken_rule(password: str, rule: str) -> None:
    with pytest.raises(PasswordRejected, match=rule):
        check_policy(password, "alice")


def test_password_policy_accepts_a_passphrase_and_hashes_with_argon2id() -> None:
    check_policy(PASSWORD, "alice")
    stored = passwords.hash_password(PASSWORD)
    assert stored.startswith("$argon2id$")
    assert stored != passwords.hash_password(PASSWORD)  # salted
    assert passwords.verify_password(stored, PASSWORD)
    assert not passwords.verify_password(stored, PASSWORD + "x")
    assert not passwords.verify_password("not a hash", PASSWORD)


def test_accounts_store_only_the_hash_and_refuse_a_weak_password(node: Node) -> None:
    node.add_user("alice", "org-a", Role.RESEARCHER)
    with node.engine.connect() as connection:
        stored = connection.execute(select(UserRecord.password_hash).where(UserRecord.username == "alice")).scalar_one()
    assert PASSWORD not in stored and stored.startswith("$argon2id$")
    with pytest.raises(PasswordRejected):
        node.identity.create_user("bob", "org-a", frozenset({Role.RESEARCHER}), "bob-password-12")


def test_admin_login_requires_totp(node: Node) -> None:
    admin = node.add_user("root", "platform", Role.PLATFORM_ADMIN)
    assert admin.totp is not None and admin.totp.provisioning_uri.startswith("otpauth://totp/")
    client = TestClient(node.app())
    without = client.post("/auth/login", json={"username": "root", "password": PASSWORD})
    assert without.status_code == 401 and "TOTP code is required" in without.json()["detail"]
    wrong = client.post("/auth/login", json={"username": "root", "password": PASSWORD, "totp": "000000"})
    assert wrong.status_code == 401
    code = totp.current_code(admin.totp.secret, node.clock.now)
    assert client.post("/auth/login", json={"username": "root", "password": PASSWORD, "totp": code}).status_code == 200
    replay = client.post("/auth/login", json={"username": "root", "password": PASSWORD, "totp": code})
    assert replay.status_code == 401 and "already used" in replay.json()["detail"]


def test_non_admin_may_enrol_mfa_and_then_needs_it(node: Node) -> None:
    user = node.add_user("carol", "org-a", Role.RESEARCHER)
    assert user.totp is None
    client = TestClient(node.app())
    access = node.login(client, user)["access_token"]
    enrolment = client.post("/auth/mfa/enrol", headers=bearer(access)).json()
    assert enrolment["provisioning_uri"].startswith("otpauth://totp/FLUTE:carol")
    assert client.post("/auth/mfa/confirm", json={"totp": "abcdef"}, headers=bearer(access)).status_code == 400
    code = totp.current_code(enrolment["secret"], node.clock.now)
    confirm = client.post("/auth/mfa/confirm", json={"totp": code}, headers=bearer(access))
    assert confirm.status_code == 204
    node.clock.advance(timedelta(seconds=60))
    assert client.post("/auth/login", json={"username": "carol", "password": PASSWORD}).status_code == 401
    fresh = totp.current_code(enrolment["secret"], node.clock.now)
    assert client.post("/auth/login", json={"username": "carol", "password": PASSWORD, "totp": fresh}).status_code == 200


def test_lockout_with_exponential_back_off_refuses_even_the_right_password(node: Node) -> None:
    user = node.add_user("dave", "org-a", Role.RESEARCHER)
    client = TestClient(node.app())
    for _ in range(TEST_POLICY.lockout_threshold):
        assert client.post("/auth/login", json={"username": "dave", "password": "wrong password 123"}).status_code == 401
    locked = client.post("/auth/login", json={"username": "dave", "password": PASSWORD})
    assert locked.status_code == 429 and int(locked.headers["Retry-After"]) == 11
    node.clock.advance(timedelta(seconds=11))
    assert client.post("/auth/login", json={"username": "dave", "password": "wrong password 123"}).status_code == 401
    doubled = client.post("/auth/login", json={"username": "dave", "password": PASSWORD})
    assert doubled.status_code == 429 and int(doubled.headers["Retry-After"]) == 21  # 10 s * 2
    node.clock.advance(timedelta(seconds=21))
    node.login(client, user)  # the right password after the lock works and resets the streak
    actions = [entry.action for entry in _entries(node)]
    assert actions.count("auth.login.failed") == 4 and actions.count("auth.login.refused") == 2


def test_address_throttle_stops_spraying_many_accounts(node: Node) -> None:
    victims = [node.add_user(f"user{i}", "org-a", Role.RESEARCHER) for i in range(3)]
    client = TestClient(node.app())
    for i in range(TEST_POLICY.address_threshold):
        client.post("/auth/login", json={"username": f"user{i % 3}x", "password": "wrong password 123"})
    response = client.post("/auth/login", json={"username": victims[0].username, "password": PASSWORD})
    assert response.status_code == 429


def test_unknown_user_and_wrong_password_look_the_same(node: Node) -> None:
    node.add_user("erin", "org-a", Role.RESEARCHER)
    client = TestClient(node.app())
    unknown = client.post("/auth/login", json={"username": "nobody", "password": PASSWORD})
    wrong = client.post("/auth/login", json={"username": "erin", "password": "wrong password 123"})
    assert unknown.status_code == wrong.status_code == 401 and unknown.json() == wrong.json()


def test_access_token_expires(node: Node) -> None:
    user = node.add_user("frank", "org-a", Role.RESEARCHER)
    client = TestClient(node.app())
    access = node.login(client, user)["access_token"]
    assert client.get("/auth/me", headers=bearer(access)).json()["user_id"] == "frank"
    node.clock.advance(TEST_POLICY.access_ttl)
    expired = client.get("/auth/me", headers=bearer(access))
    assert expired.status_code == 401 and "expired" in expired.json()["detail"]


def test_tampered_or_foreign_tokens_are_refused(node: Node, tmp_path: Path) -> None:
    from .conftest import make_node

    user = node.add_user("gina", "org-a", Role.RESEARCHER)
    other = make_node(tmp_path / "other", None)
    other.add_user("gina", "org-a", Role.RESEARCHER)
    foreign = other.login(TestClient(other.app()), user)["access_token"]
    client = TestClient(node.app())
    access = node.login(client, user)["access_token"]
    header, payload, signature = access.split(".")
    forged = f"{header}.{payload[:-2]}AA.{signature}"
    for token in (foreign, forged, "garbage", access + "x"):
        assert client.get("/auth/me", headers=bearer(token)).status_code == 401
    other.engine.dispose()


def test_refresh_rotates_and_a_replay_revokes_the_family(node: Node) -> None:
    user = node.add_user("hank", "org-a", Role.RESEARCHER)
    client = TestClient(node.app())
    first = node.login(client, user)
    second = client.post("/auth/refresh", json={"refresh_token": first["refresh_token"]}).json()
    assert second["refresh_token"] != first["refresh_token"]
    third = client.post("/auth/refresh", json={"refresh_token": second["refresh_token"]}).json()
    assert client.get("/auth/me", headers=bearer(third["access_token"])).status_code == 200
    replay = client.post("/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert replay.status_code == 401 and "already used" in replay.json()["detail"]
    # the whole family is gone: the newest tokens stop working too
    assert client.get("/auth/me", headers=bearer(third["access_token"])).status_code == 401
    assert client.post("/auth/refresh", json={"refresh_token": third["refresh_token"]}).status_code == 401
    assert "auth.refresh.replay" in [entry.action for entry in _entries(node)]


def test_idle_session_times_out_and_refreshing_is_not_activity(node: Node) -> None:
    user = node.add_user("ivan", "org-a", Role.RESEARCHER)
    client = TestClient(node.app())
    tokens = node.login(client, user)
    node.clock.advance(timedelta(minutes=9))
    tokens = client.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]}).json()
    node.clock.advance(timedelta(minutes=7))  # 16 min since the last real use
    idle = client.get("/auth/me", headers=bearer(tokens["access_token"]))
    assert idle.status_code == 401 and "idle" in idle.json()["detail"]
    assert client.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]}).status_code == 401


def test_activity_keeps_the_session_alive(node: Node) -> None:
    user = node.add_user("jane", "org-a", Role.RESEARCHER)
    client = TestClient(node.app())
    tokens = node.login(client, user)
    for _ in range(3):
        node.clock.advance(timedelta(minutes=8))
        tokens = client.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]}).json()
        assert client.get("/auth/me", headers=bearer(tokens["access_token"])).status_code == 200


def test_logout_ends_the_session(node: Node) -> None:
    user = node.add_user("kate", "org-a", Role.RESEARCHER)
    client = TestClient(node.app())
    tokens = node.login(client, user)
    assert client.post("/auth/logout", headers=bearer(tokens["access_token"])).status_code == 204
    assert client.get("/auth/me", headers=bearer(tokens["access_token"])).status_code == 401
    assert client.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]}).status_code == 401


def test_api_tokens_are_scoped_hashed_and_revocable(node: Node) -> None:
    user = node.add_user("liam", "org-a", Role.RESEARCHER, Role.DATA_STEWARD)
    client = TestClient(node.app())
    access = node.login(client, user)["access_token"]
    created = client.post("/auth/tokens", json={"name": "sdk", "roles": ["researcher"]}, headers=bearer(access))
    assert created.status_code == 201
    secret, token_id = created.json()["token"], created.json()["id"]
    me = client.get("/auth/me", headers=bearer(secret)).json()
    assert me["roles"] == ["researcher"] and me["auth_method"] == "api_token"
    assert client.post("/auth/tokens", json={"name": "x"}, headers=bearer(secret)).status_code == 400  # tokens cannot mint tokens
    assert client.post("/auth/tokens", json={"name": "x", "roles": ["auditor"]}, headers=bearer(access)).status_code == 400
    with node.engine.connect() as connection:
        assert secret not in str(connection.exec_driver_sql("SELECT * FROM gov_api_token").all())
    listed = client.get("/auth/tokens", headers=bearer(access)).json()
    assert [t["id"] for t in listed] == [token_id] and "token" not in listed[0]
    assert client.delete(f"/auth/tokens/{token_id}", headers=bearer(access)).status_code == 204
    revoked = client.get("/auth/me", headers=bearer(secret))
    assert revoked.status_code == 401 and "revoked" in revoked.json()["detail"]
    assert client.delete(f"/auth/tokens/{token_id}", headers=bearer(access)).status_code == 404


def test_admin_roles_cannot_be_delegated_to_api_tokens(node: Node) -> None:
    admin = node.add_user("mia", "org-a", Role.DATA_OWNER_ADMIN)
    client = TestClient(node.app())
    access = node.login(client, admin)["access_token"]
    response = client.post("/auth/tokens", json={"name": "sdk", "roles": ["data_owner_admin"]}, headers=bearer(access))
    assert response.status_code == 400 and "admin roles" in response.json()["detail"]


def test_disabling_an_account_ends_its_sessions(node: Node) -> None:
    user = node.add_user("noah", "org-a", Role.RESEARCHER)
    client = TestClient(node.app())
    access = node.login(client, user)["access_token"]
    node.identity.set_disabled("noah", True)
    assert client.get("/auth/me", headers=bearer(access)).status_code == 401
    assert client.post("/auth/login", json={"username": "noah", "password": PASSWORD}).status_code == 401


def test_identity_errors_are_specific(node: Node) -> None:
    node.add_user("olga", "org-a", Role.RESEARCHER)
    with pytest.raises(IdentityError, match="taken"):
        node.add_user("olga", "org-a", Role.AUDITOR)
    with pytest.raises(IdentityError, match="no organisation"):
        node.identity.create_user("pete", "org-x", frozenset({Role.RESEARCHER}), PASSWORD)
    with pytest.raises(IdentityError, match="username"):
        node.identity.create_user("Bad Name", "org-a", frozenset({Role.RESEARCHER}), PASSWORD)


def _entries(node: Node) -> list[AuditEntry]:
    with node.engine.connect() as connection:
        return list(iter_entries(connection))


def test_password_change_checks_the_old_one_and_ends_other_sessions(node: Node) -> None:
    user = node.add_user("quinn", "org-a", Role.RESEARCHER)
    client = TestClient(node.app())
    elsewhere = node.login(client, user)["access_token"]
    here = node.login(client, user)["access_token"]
    new = "a brand new passphrase 7"
    wrong = client.post("/auth/password", json={"current_password": "not it at all 1", "new_password": new}, headers=bearer(here))
    assert wrong.status_code == 400 and "current password is wrong" in wrong.json()["detail"]
    weak = client.post("/auth/password", json={"current_password": PASSWORD, "new_password": "short"}, headers=bearer(here))
    assert weak.status_code == 400 and "at least 12" in weak.json()["detail"]
    assert client.post("/auth/password", json={"current_password": PASSWORD, "new_password": new}, headers=bearer(here)).status_code == 204
    assert client.get("/auth/me", headers=bearer(here)).status_code == 200
    assert client.get("/auth/me", headers=bearer(elsewhere)).status_code == 401
    assert client.post("/auth/login", json={"username": "quinn", "password": PASSWORD}).status_code == 401
    assert client.post("/auth/login", json={"username": "quinn", "password": new}).status_code == 200


def test_totp_secrets_are_sealed_at_rest_and_bound_to_their_account(node: Node) -> None:
    alice = node.add_user("alice-admin", "org-a", Role.DATA_OWNER_ADMIN)
    bob = node.add_user("bob-admin", "org-a", Role.DATA_OWNER_ADMIN)
    assert alice.totp is not None and bob.totp is not None
    with node.engine.begin() as connection:
        stored = dict(connection.exec_driver_sql("SELECT username, totp_secret FROM gov_user").all())
        assert alice.totp.secret not in stored["alice-admin"] and stored["alice-admin"].startswith("v1:")
        # a sealed secret copied to another account's row does not open there
        connection.exec_driver_sql("UPDATE gov_user SET totp_secret = ? WHERE username = 'bob-admin'", (stored["alice-admin"],))
    client = TestClient(node.app())
    refused = client.post("/auth/login", json={"username": "bob-admin", "password": PASSWORD, "totp": totp.current_code(alice.totp.secret, node.clock.now)})
    assert refused.status_code == 401 and "does not open" in refused.json()["detail"]
    node.login(client, alice)


@pytest.mark.postgres
def test_concurrent_failures_are_all_counted(tmp_path: Path, postgres_server: PostgresServer) -> None:
    from flute.governance import throttle

    from .conftest import make_node

    node = make_node(tmp_path / "pg", None, db_url=postgres_server.create_database())
    errors: list[BaseException] = []

    def fail_five() -> None:
        try:
            for _ in range(5):
                with node.engine.begin() as connection:
                    throttle.record_failure(connection, TEST_POLICY, "user:target", 1000, node.clock.now)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=fail_five) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with node.engine.connect() as connection:
        failures = connection.exec_driver_sql("SELECT failures FROM gov_login_throttle WHERE key = 'user:target'").scalar_one()
    node.engine.dispose()
    assert errors == [] and failures == 20
