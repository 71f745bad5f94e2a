"""The FHIR REST source against a real FHIR server on loopback (Medplum fhir-router, in-memory):
paging by `next` links, bearer auth, retries with back-off, clear errors. # F-STD-9, F-HUF-19, F-PIL-5"""

from __future__ import annotations

import socket
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from fhir_rest_server import FhirTestServer, running_fhir_server

from flute.cohort.sim_fhir import patient_resources
from flute.cohort.simulate import simulate_sites
from flute.fhir.extract import extract_all
from flute.fhir.rest import FhirServerError, iter_units_from_server
from flute.fhir.source import ImportUnit
from flute.fhir.validate import blocks_import, check_references, validate_resource

IG_EXAMPLES = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "flute-ig-examples"
TOKEN = "s3cret-test-token"
SIMULATED_SCALE = 0.25  # IRST at this scale: 100 patients, about 730 resources
QUICK = {"backoff_s": 0.01}


def _key(resource: dict[str, Any]) -> tuple[str, str]:
    return resource["resourceType"], resource["id"]


def _load(server: FhirTestServer) -> tuple[Counter[tuple[str, str]], dict[str, Any]]:
    """The IG's two example transactions and one simulated site (one batch Bundle of the
    simulator's resources) on the server: returns what the server holds, by (type, id), and the
    site's expected study rows."""
    held: Counter[tuple[str, str]] = Counter()
    for name in ("EXP-S1-IncludedPatient.json", "EXP-S2-ExcludedPatient.json"):
        answer = server.post_bundle(orjson.loads((IG_EXAMPLES / name).read_bytes()))
        held.update(_key(e["resource"]) for e in answer["entry"])
    irst = next(site for site in simulate_sites(seed=5, scale=SIMULATED_SCALE) if site.spec.slug == "irst")
    entries = [
        {"resource": r, "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"}}
        for patient in irst.patients
        for r in patient_resources(patient)
    ]
    answer = server.post_bundle({"resourceType": "Bundle", "type": "batch", "entry": entries})
    held.update(_key(e["resource"]) for e in answer["entry"])
    return held, {p.id: p.expected_row() for p in irst.patients}


@pytest.fixture(scope="module")
def open_server() -> Iterator[tuple[FhirTestServer, Counter[tuple[str, str]], dict[str, Any]]]:
    with running_fhir_server() as server:
        held, expected = _load(server)
        yield server, held, expected


@pytest.fixture(scope="module")
def secured_server() -> Iterator[FhirTestServer]:
    with running_fhir_server(token=TOKEN) as server:
        server.post_bundle(orjson.loads((IG_EXAMPLES / "EXP-S1-IncludedPatient.json").read_bytes()))
        yield server


def _pull(server: FhirTestServer, **options: Any) -> list[ImportUnit]:
    return list(iter_units_from_server(server.base_url, **options))


@pytest.mark.parametrize("relative_links", [False, True], ids=["absolute-next", "relative-next"])
def test_every_resource_arrives_exactly_once_over_many_small_pages(open_server: Any, relative_links: bool) -> None:
    server, held, _ = open_server
    server.configure(relative_links=relative_links)
    units = _pull(server, page_size=7)
    arrived = Counter(_key(entry.resource) for unit in units for entry in unit.entries if entry.resource)
    assert arrived == held and max(arrived.values()) == 1
    assert all(not unit.atomic and len(unit.entries) == 1 and unit.entries[0].error is None for unit in units)
    for unit in units:
        location = unit.entries[0].location
        assert location.startswith(f"{server.base_url}/") and location.rsplit("#", 1)[0] == unit.source
        assert location.endswith(tuple(f"#entry[{i}]" for i in range(7)))
    pages = [r["url"] for r in server.requests()]
    assert len(pages) == sum(-(-n // 7) for n in Counter(t for t, _ in held).values()), "one request per page, no more"
    assert all("_count=7" in url for url in pages)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(page_size=st.integers(min_value=3, max_value=150), relative_links=st.booleans())
def test_paging_delivers_each_resource_once_whatever_the_page_size(open_server: Any, page_size: int, relative_links: bool) -> None:
    server, held, _ = open_server
    server.configure(relative_links=relative_links)
    types = ("Patient", "FamilyMemberHistory")
    units = _pull(server, resource_types=types, page_size=page_size)
    arrived = Counter(_key(entry.resource) for unit in units for entry in unit.entries if entry.resource)
    assert arrived == Counter({key: n for key, n in held.items() if key[0] in types})


def test_pulled_resources_validate_and_extract_like_the_files(open_server: Any) -> None:
    """Through the same validation and extraction as file imports: the simulated site's rows are
    exactly the generator's, and the IG's included/excluded examples come out as the IG says."""
    server, _, expected = open_server
    server.configure()
    resources = [e.resource for unit in _pull(server, page_size=50) for e in unit.entries if e.resource]
    dangling = {(i.resource_type, i.resource_id) for i in check_references(resources, frozenset())}
    accepted = [r for r in resources if not blocks_import(validate_resource(r)) and _key(r) not in dangling]
    rows, _ = extract_all(accepted)
    by_patient = {row.patient: row for row in rows}
    for patient_id, row in expected.items():
        assert by_patient[patient_id].to_json() == row.to_json()
    examples = [row for row in rows if row.patient not in expected]
    assert sorted((row.included, row.variables["psa"]) for row in examples) == [(False, 1.0), (True, 5.0)]


def test_transient_503s_are_retried_with_back_off(open_server: Any) -> None:
    server, held, _ = open_server
    server.configure(fail_next=3, fail_status=503)
    units = _pull(server, resource_types=("Patient",), page_size=40, max_retries=3, **QUICK)
    assert len(units) == sum(1 for t, _ in held if t == "Patient")
    statuses = server.requests()
    assert len(statuses) == 3 + -(-len(units) // 40), "three failed attempts, then every page once"


def test_429_retry_after_is_honoured(open_server: Any) -> None:
    server, _, _ = open_server
    server.configure(fail_next=1, fail_status=429, retry_after="1")
    started = time.monotonic()
    units = _pull(server, resource_types=("FamilyMemberHistory",), **QUICK)
    assert time.monotonic() - started >= 1.0, "waited as long as Retry-After asked, not the 10 ms back-off"
    assert units


def test_persistent_failure_gives_up_with_a_clear_error(open_server: Any) -> None:
    server, _, _ = open_server
    server.configure(fail_next=10, fail_status=502)
    with pytest.raises(FhirServerError, match=r"failed after 3 attempts, last with HTTP 502 \(injected failure\).*raise max_retries") as caught:
        _pull(server, resource_types=("Patient",), max_retries=2, **QUICK)
    assert caught.value.status == 502 and caught.value.url.endswith("/Patient?_count=500")
    assert len(server.requests()) == 3


def test_a_wrong_base_url_is_a_clear_404(open_server: Any) -> None:
    server, _, _ = open_server
    server.configure()
    with pytest.raises(FhirServerError, match=r"HTTP 404 .*check that base_url is the FHIR base") as caught:
        list(iter_units_from_server(f"{server.root}/fhir", **QUICK))
    assert caught.value.status == 404
    assert len(server.requests()) == 0, "a 404 is not retried (and never reached the FHIR base)"


def test_bearer_token_is_sent_on_every_page(secured_server: FhirTestServer) -> None:
    secured_server.configure()
    units = _pull(secured_server, headers=secured_server.auth_headers, page_size=2)
    assert len(units) == 7
    seen = secured_server.requests()
    assert len(seen) > 4 and {r["authorization"] for r in seen} == {f"Bearer {TOKEN}"}


@pytest.mark.parametrize("headers", [None, {"Authorization": "Bearer wrong"}], ids=["no-token", "wrong-token"])
def test_missing_or_wrong_token_is_a_clear_401_without_retries(secured_server: FhirTestServer, headers: dict[str, str] | None) -> None:
    secured_server.configure()
    with pytest.raises(FhirServerError, match=r"HTTP 401 .*send a valid 'Authorization: Bearer <token>' header") as caught:
        _pull(secured_server, headers=headers, **QUICK)
    assert caught.value.status == 401
    assert len(secured_server.requests()) == 1


def test_hub_import_from_fhir_on_the_command_line(secured_server: FhirTestServer, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from flute.cli.main import app

    runner = CliRunner()
    home = str(tmp_path / "hub")
    assert runner.invoke(app, ["hub", "init", "--name", "rest-test", "--home", home]).exit_code == 0
    refused = runner.invoke(app, ["hub", "import", "--from-fhir", secured_server.base_url, "--home", home])
    assert refused.exit_code == 2 and "HTTP 401" in refused.output
    header = f"Authorization: Bearer {TOKEN}"
    done = runner.invoke(app, ["hub", "import", "--from-fhir", secured_server.base_url, "--fhir-header", header, "--home", home, "--json"])
    assert done.exit_code == 0, done.output
    report = orjson.loads(done.output)
    assert (report["read"], report["stored"], report["quarantined"], report["patients_derived"]) == (7, 7, 0, 1)


def test_an_unreachable_server_is_retried_then_reported() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(FhirServerError, match=r"failed after 3 attempts: ConnectError.*check that the server is running") as caught:
        list(iter_units_from_server(f"http://127.0.0.1:{port}/fhir/R4", max_retries=2, **QUICK))
    assert caught.value.status is None


@pytest.mark.parametrize(
    ("base_url", "options", "message"),
    [
        ("ftp://host/fhir", {}, "http"),
        ("http://host/fhir?x=1", {}, "base"),
        ("http://host/fhir", {"resource_types": ("observation",)}, "not a FHIR resource type"),
        ("http://host/fhir", {"page_size": 0}, "page_size must be >= 1"),
    ],
)
def test_arguments_that_cannot_work_are_refused_before_any_request(base_url: str, options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        list(iter_units_from_server(base_url, **options))
