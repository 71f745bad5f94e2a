"""Governance acceptance: one scripted story over real service processes on loopback (URS-3/10/11,
F-SRS-1/2/7/8/9, F-PIL-16/17/20/21, NF-PIL-9, F-HUF-1).

A platform admin bootstraps the coordinator (`flute admin init`); two hospitals create hubs
(`flute hub init`, `flute hub import` of `flute simulate --scale 0.1` sites) and their first
data-owner admins (`flute admin init --home`, TOTP via pyotp); the coordinator runs with both hub
homes (`flute coordinator api --hub ...`, the single-machine setting), each hub with its steward's
API token (`flute hub api --coordinator ...`); every service speaks HTTPS with certificates from
`flute pki init`, and every client pins its CA. Owners declare and publish a dataset through the
UI; a researcher (created by the platform admin, MFA enrolled) uses the SDK to search, accept the
terms and ask both hubs for access; both owners approve a field selection and a budget; the
researcher runs DP statistics (charged to both ledgers; a field asked for but not granted is
refused by each hub and alerts its owner) and a federated study through the SDK;
each owner sees them in the audit log and on the budget page; `flute audit verify --home` passes,
and exits 1 naming the entry once one audit line is changed in the hub's SQLite.

Brute force and token replay are covered in tests/governance/test_gov_auth.py (lockout with
back-off, address throttle, refresh-token replay revoking the family, access-token expiry, idle
session timeout); this story checks the lockout once more against the live service.
"""

from __future__ import annotations

import json
import re
import ssl
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import httpx
import pyotp
import pytest
from rich.console import Console
from sqlalchemy import create_engine, text

import flute
from flute.cli.main import app
from flute.engine.pki import PkiLayout
from flute.engine.spec import StudySpec
from flute.governance.access import RequestStatus
from flute.sdk import Client, FluteApiError

from governance.test_gov_cli import SECRET_LINES, _free_port, _service, runner

pytestmark = pytest.mark.slow

STUDY = "cspca-e2e"
REQUESTED = ("ageAtBiopsy", "psa", "pirads", "dre", "prostateVolume")
GRANTED = ("ageAtBiopsy", "psa", "pirads", "dre")
EPSILON_BUDGET, EPSILON_QUERY = 2.0, 0.5
SITES = ("vhebron", "chu-liege")
SPEC = StudySpec.from_mapping(
    {
        "study_id": STUDY,
        "name": "csPCa risk, governance acceptance",
        "cohort": {"variables": list(GRANTED)},
        "model": {"name": "logistic_regression", "l2": 0.01},
        "training": {"rounds": 6},
        "federation": {"min_hubs": 2, "retries": 0, "timeout_s": 120},
        "resources": {"min_rows_per_hub": 10},
        "evaluation": {"cv_folds": 2, "leave_one_hub_out": False, "score_bins": 1000},
    }
)


@dataclass(frozen=True)
class Secret:
    password: str
    totp: str


def _cli(*arguments: str) -> str:
    result = runner.invoke(app, list(arguments))
    assert result.exit_code == 0, f"flute {' '.join(arguments)}: {result.output}"
    return result.output


def _admin_init(*arguments: str) -> Secret:
    found = SECRET_LINES.search(_cli("admin", "init", *arguments))
    assert found is not None
    return Secret(found.group(1), found.group(2))


def _rendered(value: object) -> str:
    """What a terminal shows for an SDK result (its `__rich__`)."""
    console = Console(record=True, width=200)
    console.print(value)
    return console.export_text()


def _trusting(ca: Path) -> ssl.SSLContext:
    """TLS that trusts the FLUTE CA only."""
    return ssl.create_default_context(cafile=str(ca))


def _next_code(secret: str) -> str:
    """A TOTP code no earlier login used: the next 30-s step (accepted within +-1 step)."""
    return pyotp.TOTP(secret).at(time.time() + 30)


class OwnerBrowser:
    """A data owner in the hub's UI: signs in with password + TOTP, posts forms with the CSRF
    token the page carries, reads the flash message the redirect shows."""

    def __init__(self, base: str, ca: Path, username: str, secret: Secret) -> None:
        self.http = httpx.Client(base_url=base, verify=_trusting(ca), follow_redirects=True, timeout=120)
        signed_in = self.http.post("/ui/login", data={"username": username, "password": secret.password, "totp": pyotp.TOTP(secret.totp).now()})
        assert signed_in.status_code == 200 and "Sign out" in signed_in.text, signed_in.text

    def close(self) -> None:
        self.http.close()

    def page(self, path: str) -> str:
        response = self.http.get(path)
        assert response.status_code == 200, response.text
        return response.text

    def submit(self, page: str, action: str, form: dict[str, str | list[str]]) -> str:
        found = re.search(r'name="csrf" value="([0-9a-f]+)"', self.page(page))
        assert found is not None
        response = self.http.post(action, data={**form, "csrf": found.group(1)})
        assert response.status_code == 200, response.text
        return response.text


@dataclass
class World:
    coordinator_home: Path
    ca: Path
    hub_homes: dict[str, Path]
    owners: dict[str, Secret]
    coordinator: str
    hubs: dict[str, str]
    researcher_token: str
    researcher_password: str


def _api_login(http: httpx.Client, username: str, password: str, code: str | None = None) -> str:
    body = {"username": username, "password": password, **({"totp": code} if code else {})}
    response = http.post("/auth/login", json=body)
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _create_user(http: httpx.Client, admin: str, org: str, username: str, role: str) -> str:
    created = http.post(f"/orgs/{org}/users", json={"username": username, "roles": [role]}, headers=_bearer(admin))
    assert created.status_code == 201, created.text
    return str(created.json()["password"])


def _api_token(http: httpx.Client, access: str) -> str:
    made = http.post("/auth/tokens", json={"name": "e2e"}, headers=_bearer(access))
    assert made.status_code == 201, made.text
    return str(made.json()["token"])


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("e2e")
    coordinator_home = root / "coordinator"
    root_secret = _admin_init("--coordinator-home", str(coordinator_home), "--username", "root")
    pki = PkiLayout(root / "pki")
    _cli("pki", "init", "--dir", str(pki.root))
    tls = ["--tls-cert", str(pki.server_cert), "--tls-key", str(pki.server_key)]
    _cli("simulate", "--out", str(root / "fhir"), "--scale", "0.1", "--format", "ndjson", "--seed", "7")
    hub_homes, owners = {}, {}
    for site in SITES:
        home = root / site
        _cli("hub", "init", "--name", site, "--home", str(home))
        _cli("hub", "import", "--home", str(home), *sorted(str(p) for p in (root / "fhir" / site).glob("*.ndjson")))
        owners[site] = _admin_init("--home", str(home), "--username", f"dpo-{site}")
        hub_homes[site] = home
    with ExitStack() as services, pytest.MonkeyPatch.context() as env:
        port = _free_port()
        coordinator = f"https://127.0.0.1:{port}"
        hub_arguments = [argument for home in hub_homes.values() for argument in ("--hub", str(home))]
        services.enter_context(_service(
            ["coordinator", "api", "--home", str(coordinator_home), "--port", str(port), *tls, *hub_arguments], f"{coordinator}/health", str(pki.ca_cert),
        ))
        http = services.enter_context(httpx.Client(base_url=coordinator, verify=_trusting(pki.ca_cert), timeout=60))
        admin = _api_login(http, "root", root_secret.password, pyotp.TOTP(root_secret.totp).now())
        for org in (*SITES, "uni-research"):
            assert http.post("/orgs", json={"id": org, "name": org}, headers=_bearer(admin)).status_code == 201
        hubs = {}
        for site in SITES:
            steward_password = _create_user(http, admin, site, f"steward-{site}", "data_steward")
            env.setenv("FLUTE_COORDINATOR_TOKEN", _api_token(http, _api_login(http, f"steward-{site}", steward_password)))
            hub_port = _free_port()
            hubs[site] = f"https://127.0.0.1:{hub_port}"
            services.enter_context(_service(
                ["hub", "api", "--home", str(hub_homes[site]), "--port", str(hub_port), *tls, "--coordinator", coordinator, "--coordinator-ca", str(pki.ca_cert)],
                f"{hubs[site]}/health", str(pki.ca_cert),
            ))
        # The researcher: created by the platform admin, enrols TOTP, then signs in with it.
        researcher_password = _create_user(http, admin, "uni-research", "researcher-1", "researcher")
        first = _api_login(http, "researcher-1", researcher_password)
        enrolment = http.post("/auth/mfa/enrol", headers=_bearer(first)).json()
        confirmed = http.post("/auth/mfa/confirm", json={"totp": pyotp.TOTP(enrolment["secret"]).now()}, headers=_bearer(first))
        assert confirmed.status_code == 204, confirmed.text
        refused = http.post("/auth/login", json={"username": "researcher-1", "password": researcher_password})
        assert refused.status_code == 401 and "TOTP" in refused.json()["detail"]
        access = _api_login(http, "researcher-1", researcher_password, _next_code(enrolment["secret"]))
        yield World(coordinator_home, pki.ca_cert, hub_homes, owners, coordinator, hubs, _api_token(http, access), researcher_password)


@pytest.fixture
def closing() -> Iterator[ExitStack]:
    """Closes the test's HTTP clients even when it fails (an open TLS keep-alive connection
    would hold up the services' shutdown)."""
    with ExitStack() as stack:
        yield stack


def test_governed_study_story(world: World, closing: ExitStack) -> None:
    started = time.monotonic()
    owners = {site: OwnerBrowser(world.hubs[site], world.ca, f"dpo-{site}", world.owners[site]) for site in SITES}
    http = httpx.Client(base_url=world.coordinator, verify=_trusting(world.ca), timeout=60)
    for opened in (http, *owners.values()):
        closing.callback(opened.close)

    # 1. Each owner declares and publishes a dataset (F-PIL-11, NF-PIL-6/8).
    for site, owner in owners.items():
        saved = owner.submit("/ui/", "/ui/datasets", {
            "dataset": "biopsies", "title": f"{site} biopsy cohort", "description": "Men with MRI before prostate biopsy",
            "conditions_of_use": "csPCa risk models only", "contact": f"dpo@{site}.example", "guidance": "",
            "coverage_start": "", "coverage_end": "",
        })
        assert "dataset biopsies saved" in saved
        assert "published 1 dataset(s)" in owner.submit("/ui/", "/ui/datasets/publish", {})

    # 2. The researcher searches, accepts the terms and asks both hubs (F-HUF-1, NF-PIL-7/9).
    client: Client = flute.connect(world.coordinator, world.researcher_token, verify=str(world.ca))
    closing.callback(client.close)
    found = client.search("biopsy cohort", variables=["psa", "pirads"])
    assert sorted(entry.hub for entry in found) == sorted(SITES)
    with pytest.raises(FluteApiError, match="HTTP 403.*no approved access request"):
        client.statistics(STUDY, ["psa"], kind="mean", pet="dp", epsilon=EPSILON_QUERY)
    client.accept_policies()
    requests = [
        client.request_access(STUDY, site, "biopsies", list(REQUESTED), purpose="External validation", epsilon=EPSILON_BUDGET, delta=1e-6)
        for site in SITES
    ]

    # 3. Both owners approve a field selection and a budget in their UI (F-SRS-7/9).
    for site, owner in owners.items():
        request_id = next(r.request_id for r in requests if r.hub == site)
        assert request_id in owner.page("/ui/requests")
        approved = owner.submit("/ui/requests", f"/ui/requests/{request_id}/decision", {
            "decision": "approve", "fields": list(GRANTED), "epsilon": str(EPSILON_BUDGET), "delta": "1e-6", "reason": "",
        })
        assert f"request {request_id} approved" in approved
    decided = client.wait_for_decisions(requests, timeout_s=30, poll_s=0.2, progress=False)
    assert {r.status for r in decided} == {RequestStatus.APPROVED}

    # 4. DP statistics through the coordinator, charged to both ledgers (F-PIL-16, F-SRS-4).
    with pytest.raises(FluteApiError, match="HTTP 400.*pet 'dp' needs an epsilon"):
        client.statistics(STUDY, ["psa"], kind="mean", pet="dp")
    stats = client.statistics(STUDY, ["psa", "pirads"], kind="mean", pet="dp", epsilon=EPSILON_QUERY)
    assert [h.hub for h in stats.hubs] == sorted(SITES) and all(h.epsilon == pytest.approx(EPSILON_QUERY) for h in stats.hubs)
    assert {e.variable for e in stats.pooled} == {"psa", "pirads"} and "local DP" in stats.guarantee
    assert "pooled" in stats._repr_html_() and "pooled" in _rendered(stats)
    with pytest.raises(FluteApiError, match="HTTP 409") as outside:  # asked for, not granted: each hub refuses
        client.statistics(STUDY, ["prostateVolume"], kind="mean", pet="dp", epsilon=EPSILON_QUERY)
    for site in SITES:
        assert f"['prostateVolume'] are not granted to study '{STUDY}' on {site}/biopsies" in str(outside.value)

    # 5. A federated study through the coordinator, with progress and the report (F-PIL-17/21).
    with pytest.raises(FluteApiError, match="HTTP 400.*no hub named"):
        client.submit_study(SPEC, hubs=["nowhere"])
    handle = client.submit_study(SPEC)
    status = handle.wait(timeout_s=300, poll_s=0.5, progress=False)
    assert status.state == "succeeded", status
    report = handle.result()
    assert 0.5 < report.pooled.auroc <= 1.0 and {m.name for m in report.metrics if m.group == "site"} == set(SITES)
    assert "<html" in handle.report_html().lower()
    assert "AUROC" in _rendered(report) and "succeeded" in _rendered(status) and "<table>" in report._repr_html_()
    assert http.get(f"/studies/{handle.job_id}/result").status_code == 401

    # 6. Each owner sees the statistics and the study in the audit log and the spent budget.
    for site, owner in owners.items():
        budgets = owner.page("/ui/studies")
        row = re.search(rf"<td>{STUDY}</td><td>{site}</td><td>([\d.]+)</td><td>([\d.]+)</td>", budgets)
        assert row is not None and float(row.group(1)) == EPSILON_BUDGET and float(row.group(2)) == pytest.approx(EPSILON_QUERY)
        audit_page = owner.page("/ui/audit")
        assert "chain verified" in audit_page and "privacy.charge.commit" in audit_page
        assert "query.statistics" in audit_page and "train.newton" in audit_page  # data uses of the query and the study
        assert "prostateVolume" in owner.page("/ui/alerts")  # the refused, ungranted field alerts the owner (NF-PIL-10)
        assert f"hub {site}: audit log intact" in _cli("audit", "verify", "--home", str(world.hub_homes[site]))
    _cli("audit", "export", "--coordinator-home", str(world.coordinator_home), "--out", str(world.coordinator_home / "audit.jsonl"))
    actions = [json.loads(line).get("action") for line in (world.coordinator_home / "audit.jsonl").read_text().splitlines()]
    assert "stats.query" in actions and "study.submit" in actions

    # 7. Tampering with one audit line of a hub is detected and named (F-SRS-8).
    hub_db = create_engine(f"sqlite:///{world.hub_homes[SITES[0]] / 'hub.sqlite3'}")
    with hub_db.begin() as connection:
        seq = connection.execute(text("SELECT max(seq) FROM gov_audit_entry")).scalar_one() - 1
        connection.execute(text("UPDATE gov_audit_entry SET details = '{}' WHERE seq = :seq"), {"seq": seq})
    hub_db.dispose()
    tampered = runner.invoke(app, ["audit", "verify", "--home", str(world.hub_homes[SITES[0]])])
    assert tampered.exit_code == 1 and f"entry {seq}: content altered" in tampered.output, tampered.output
    assert "chain BROKEN" in owners[SITES[0]].page("/ui/audit")

    # 8. Brute force against the live service: after 5 failures even the right password is refused.
    for _ in range(5):
        assert http.post("/auth/login", json={"username": "researcher-1", "password": "wrong password 123"}).status_code == 401
    locked = http.post("/auth/login", json={"username": "researcher-1", "password": world.researcher_password})
    assert locked.status_code == 429 and int(locked.headers["Retry-After"]) >= 1
    print(f"governance story: {time.monotonic() - started:.1f} s after setup")
