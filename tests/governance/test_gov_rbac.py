"""Role-based access (F-SRS-2, F-PIL-12/20): every role x every action, allowed and denied,
with and without the right organisation, through `require` on real HTTP requests; then every
route of the real coordinator and hub apps: unauthenticated 401, wrong role 403, wrong
organisation 403, and the allowed role gets past the guard."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi import APIRouter, Depends, FastAPI
from fastapi.testclient import TestClient

from flute.coordinator.app import create_app as create_coordinator_app
from flute.coordinator.home import write_config
from flute.coordinator.store import open_coordinator_engine
from flute.governance import totp
from flute.governance.rbac import ADMIN_ROLES, POLICY, Action, Principal, Role, Scope, grant, permits, require
from flute.governance.service import ServiceContext, UnguardedRoute, build_app, is_public, open_context, served_routes
from flute.governance.timeutil import utc_now
from flute.hub.node import init_hub
from flute.hub.service import create_app as create_hub_app

from .conftest import PASSWORD, Node, bearer

OWN_ORG, OTHER_ORG = "org-a", "org-b"
POLICY_DENIAL = re.compile(r"is not permitted to|is limited to the caller's own organisation")


# --- the policy table itself -------------------------------------------------------------

def test_every_action_is_granted_to_someone_and_admin_actions_only_to_admins() -> None:
    granted = {action for grants in POLICY.values() for action in grants}
    assert granted == set(Action)
    for action in (Action.USER_MANAGE, Action.ORG_MANAGE, Action.CONFIG_CHANGE, Action.BUDGET_SET, Action.ACCESS_DECIDE):
        assert {role for role in Role if grant(frozenset({role}), action)} <= ADMIN_ROLES


@pytest.mark.parametrize(
    ("role", "action"),
    [
        (Role.RESEARCHER, Action.ACCESS_DECIDE), (Role.RESEARCHER, Action.AUDIT_READ), (Role.RESEARCHER, Action.WITHDRAWAL_READ),
        (Role.AUDITOR, Action.ACCESS_DECIDE), (Role.AUDITOR, Action.CONFIG_CHANGE), (Role.AUDITOR, Action.STUDY_SUBMIT),
        (Role.PLATFORM_ADMIN, Action.BUDGET_SET), (Role.PLATFORM_ADMIN, Action.DATA_IMPORT), (Role.PLATFORM_ADMIN, Action.STATS_QUERY),
        (Role.DATA_STEWARD, Action.BUDGET_SET), (Role.DATA_STEWARD, Action.ACCESS_DECIDE), (Role.DATA_STEWARD, Action.USER_MANAGE),
        (Role.DATA_OWNER_ADMIN, Action.ORG_MANAGE), (Role.DATA_OWNER_ADMIN, Action.STUDY_SUBMIT),
    ],
)
def test_separation_of_duties(role: Role, action: Action) -> None:
    assert not permits(frozenset({role}), action, OWN_ORG, OWN_ORG)


def test_auditors_change_nothing() -> None:
    read_only = {Action.ACCOUNT_SELF} | {a for a in Action if a.value.endswith((".read", ".verify", ".export"))}
    assert set(POLICY[Role.AUDITOR]) <= read_only


def test_own_organisation_grants_stop_at_the_border() -> None:
    admin = frozenset({Role.DATA_OWNER_ADMIN})
    assert permits(admin, Action.ACCESS_DECIDE, OWN_ORG, OWN_ORG)
    assert not permits(admin, Action.ACCESS_DECIDE, OWN_ORG, OTHER_ORG)
    assert permits(admin, Action.CATALOGUE_READ, OWN_ORG, OTHER_ORG)


# --- require() on every role x action, through HTTP --------------------------------------

def probe_router(_context: ServiceContext) -> APIRouter:
    """One route per action, plain and organisation-scoped by path."""
    router = APIRouter(prefix="/probe")
    for action in Action:
        def endpoint(principal: Principal = Depends(require(action))) -> dict[str, str]:
            return {"user": principal.user_id}

        router.add_api_route(f"/{action.value}", endpoint, methods=["GET"])
        router.add_api_route(f"/org/{{org_id}}/{action.value}", endpoint, methods=["GET"])
    return router


@dataclass
class Callers:
    client: TestClient
    tokens: dict[Role, str]


def _login_all(node: Node, app: FastAPI, org: str) -> dict[Role, str]:
    client = TestClient(app)
    return {role: node.login(client, node.add_user(f"{role.value.replace('_', '-')}-{org}", org, role))["access_token"] for role in Role}


@pytest.fixture(scope="module")
def probe(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callers]:
    from .conftest import make_node

    node = make_node(tmp_path_factory.mktemp("probe"), None)
    app = node.app(probe_router)
    tokens = _login_all(node, app, OWN_ORG)
    yield Callers(TestClient(app), tokens)
    node.engine.dispose()


@pytest.mark.parametrize("action", list(Action), ids=lambda a: a.value)
def test_every_role_and_action_through_require(probe: Callers, action: Action) -> None:
    assert probe.client.get(f"/probe/{action.value}").status_code == 401
    assert probe.client.get(f"/probe/{action.value}", headers=bearer("not-a-token")).status_code == 401
    for role, token in probe.tokens.items():
        scope = POLICY[role].get(action)
        plain = probe.client.get(f"/probe/{action.value}", headers=bearer(token))
        own = probe.client.get(f"/probe/org/{OWN_ORG}/{action.value}", headers=bearer(token))
        other = probe.client.get(f"/probe/org/{OTHER_ORG}/{action.value}", headers=bearer(token))
        expected_other = 200 if scope is Scope.ANY else 403
        expected = 200 if scope is not None else 403
        assert (plain.status_code, own.status_code, other.status_code) == (expected, expected, expected_other), (role, action)
        if other.status_code == 403:
            assert POLICY_DENIAL.search(other.json()["detail"])


def test_an_unguarded_route_stops_the_service(node: Node) -> None:
    def leaky(_context: ServiceContext) -> APIRouter:
        router = APIRouter()
        router.add_api_route("/patients", lambda: [], methods=["GET"])
        return router

    with pytest.raises(UnguardedRoute, match="GET /patients"):
        node.app(leaky)


# --- every route of the real coordinator and hub apps -----------------------------------

@dataclass
class RealApp:
    name: str
    client: TestClient
    organisation: str | None
    own: dict[Role, str]  # tokens of members of OWN_ORG
    other: dict[Role, str]  # tokens of members of OTHER_ORG


def _real_logins(context: ServiceContext, client: TestClient) -> tuple[dict[Role, str], dict[Role, str]]:
    tokens: dict[str, dict[Role, str]] = {}
    for org in (OWN_ORG, OTHER_ORG):
        context.identity.ensure_organisation(org, org)
        tokens[org] = {}
        for role in Role:
            user = context.identity.create_user(f"{role.value.replace('_', '-')}-{org}", org, frozenset({role}), PASSWORD)
            body = {"username": user.username, "password": PASSWORD}
            if user.totp is not None:
                body["totp"] = totp.current_code(user.totp.secret, utc_now())
            response = client.post("/auth/login", json=body)
            assert response.status_code == 200, response.text
            tokens[org][role] = response.json()["access_token"]
    return tokens[OWN_ORG], tokens[OTHER_ORG]


@pytest.fixture(scope="module")
def real_apps(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[RealApp]]:
    coordinator_home = tmp_path_factory.mktemp("coordinator")
    write_config(coordinator_home, None)
    open_coordinator_engine(coordinator_home, create=True).dispose()
    hub_home = tmp_path_factory.mktemp("hub") / OWN_ORG
    init_hub(hub_home, OWN_ORG)
    apps = []
    for name, app, organisation in (
        ("coordinator", create_coordinator_app(coordinator_home), None),
        ("hub", create_hub_app(hub_home), OWN_ORG),
    ):
        client = TestClient(app)
        own, other = _real_logins(app.state.flute_context, client)
        apps.append(RealApp(name, client, organisation, own, other))
    yield apps
    for made in apps:
        made.client.app.state.flute_context.engine.dispose()  # type: ignore[attr-defined]


def _concrete(path: str, org: str) -> str:
    return re.sub(r"\{([^}]+)\}", lambda m: org if m.group(1) == "org_id" else "x1", path)


def _call(client: TestClient, method: str, path: str, token: str | None) -> tuple[int, str]:
    """The status and error detail of a request carrying `token` the way the route takes it:
    the data-owner UI (/ui/) reads a session cookie, the APIs a bearer header."""
    from flute.hub.ui.session import SESSION_COOKIE

    client.cookies.clear()
    if path.startswith("/ui/"):
        if token:
            client.cookies.set(SESSION_COOKIE, token)
        response = client.request(method, path, follow_redirects=False)
    else:
        response = client.request(method, path, headers=bearer(token) if token else {}, follow_redirects=False)
    is_json = response.content and response.headers.get("content-type", "").startswith("application/json")
    body = response.json() if is_json else {}
    detail = body.get("detail", "") if isinstance(body, dict) else ""
    return response.status_code, detail if isinstance(detail, str) else ""


def test_every_route_of_both_apps_is_guarded(real_apps: list[RealApp]) -> None:
    """Every non-public route: 401 without credentials; 403 for every role the policy denies;
    403 for members of another organisation whose grant is limited to their own; and the
    allowed roles get past the guard (no 401, no policy 403, no server error)."""
    checked = 0
    for made in real_apps:
        routes = [route for route in served_routes(made.client.app) if not is_public(route.path)]  # type: ignore[arg-type]
        assert routes, made.name
        for route in routes:
            for method in sorted(route.methods - {"HEAD"}):
                target = OWN_ORG if made.organisation or "{org_id}" in route.path else None
                path = _concrete(route.path, OWN_ORG)
                unauthenticated = 303 if path.startswith("/ui/") else 401  # the UI sends browsers to its login page
                assert _call(made.client, method, path, None)[0] == unauthenticated, (made.name, method, route.path)
                for role in Role:
                    roles = frozenset({role})
                    allowed = all(permits(roles, action, OWN_ORG, target) for action in route.actions)
                    if allowed and "logout" in route.path:
                        continue  # ends the caller's session; logout itself is tested in test_gov_auth
                    status, detail = _call(made.client, method, path, made.own[role])
                    if allowed:
                        assert status not in (401, 303) and status < 500 and not (status == 403 and POLICY_DENIAL.search(detail)), (made.name, method, route.path, role, status, detail)
                    else:
                        assert status == 403 and POLICY_DENIAL.search(detail), (made.name, method, route.path, role, status)
                    foreign_allowed = all(permits(roles, action, OTHER_ORG, target) for action in route.actions)
                    if target is not None and not foreign_allowed:
                        foreign_status, foreign_detail = _call(made.client, method, path, made.other[role])
                        assert foreign_status == 403 and POLICY_DENIAL.search(foreign_detail), (made.name, method, route.path, role)
                checked += 1
    assert checked >= 20


def test_both_apps_serve_openapi_and_health_publicly(real_apps: list[RealApp]) -> None:
    for made in real_apps:
        assert made.client.get("/health").json()["status"] == "ok"
        schema = made.client.get("/openapi.json").json()
        assert "/auth/login" in schema["paths"] and "401" in schema["paths"]["/auth/me"]["get"]["responses"]


def test_context_helper_builds_a_guarded_app(tmp_path: Path) -> None:
    home = tmp_path / "c"
    write_config(home, None)
    engine = open_coordinator_engine(home, create=True)
    app = build_app("x", open_context(home, engine, None))
    assert TestClient(app).get("/auth/me").status_code == 401
    engine.dispose()
