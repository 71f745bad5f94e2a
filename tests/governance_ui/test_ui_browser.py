"""The data-owner UI in a real headless Chromium (F-HUF-20): sign in with password and TOTP,
see the dataset's catalogue entry, approve a pending access request with a field selection and
a budget (NF-PIL-9, F-SRS-7), then find the budget in the ledger page and the audit log verified.
Forms without the session's CSRF token are refused."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi import FastAPI

from flute.cohort.variables import VARIABLE_NAMES
from flute.governance.access import RequestStatus
from flute.hub.consent import ConsentRegister
from flute.hub.node import open_hub

from .ui_support import DECLARATION, HUB, build_world, chromium_page, file_request, live_server, sign_in, ui_app  # noqa: F401

pytestmark = pytest.mark.slow


def test_owner_approves_a_request_with_fields_and_budget(tmp_path: Path, live_server: Callable[[FastAPI], str]) -> None:
    world = build_world(tmp_path)
    request = file_request(world.registry)
    base = live_server(ui_app(world))
    with chromium_page(tmp_path / "chromium-profile") as page:
        sign_in(page, base, world)
        section = page.locator(f"#dataset-{DECLARATION.dataset}")
        assert "csPCa biopsy cohort" in section.inner_text()
        assert section.locator("strong", has_text="csPCa risk models").count() == 1  # markdown rendered
        assert "<script>alert('x')</script>" in section.inner_text()  # raw HTML shown as text, never run

        page.click("text=Access requests")
        form = page.locator(f"#request-{request.request_id}")
        assert "External validation of a csPCa risk model" in form.inner_text()
        form.locator("input[name=fields][value=dre]").uncheck()
        form.locator("input[name=epsilon]").fill("1.5")
        form.locator("input[name=delta]").fill("1e-7")
        form.locator("button[value=approve]").click()
        page.wait_for_url(f"{base}/ui/studies")
        assert f"request {request.request_id} approved" in page.locator(".message").inner_text()
        budget_row = page.locator("#budgets tr", has_text="cspca-lr")
        assert budget_row.locator("td").all_inner_texts()[:6] == ["cspca-lr", HUB, "1.5", "0", "0", "1.5"]
        assert "psa, pirads, ageAtBiopsy" in page.locator("#grants").inner_text()

        page.click("text=Audit log")
        assert page.locator("#verification").inner_text().startswith("chain verified")
        assert page.locator("td", has_text="access.decide").count() == 1

        refused = page.context.request.post(f"{base}/ui/withdrawals", form={"pseudonym": "x", "reason": "test"})
        assert refused.status == 403 and "CSRF" in refused.text()

    decided = world.registry.request(request.request_id)
    assert decided.status is RequestStatus.APPROVED
    decision = world.registry.decision(request.request_id)
    assert decision is not None and decision.fields == ("psa", "pirads", "ageAtBiopsy") and decision.epsilon == 1.5
    with open_hub(world.home) as hub:
        register = ConsentRegister(hub.store, HUB, None)
        assert register.ledger.budget("cspca-lr", HUB).epsilon_total == 1.5
        assert register.guard_study("cspca-lr", ("psa", "pirads"), "train.newton").request_id == request.request_id


def test_pages_need_a_session_and_the_owner_withdraws_a_patient(tmp_path: Path, live_server: Callable[[FastAPI], str]) -> None:
    import httpx

    world = build_world(tmp_path)
    base = live_server(ui_app(world))
    for path in ("/ui/", "/ui/requests", "/ui/studies", "/ui/audit", "/ui/alerts", "/ui/withdrawals"):
        response = httpx.get(f"{base}{path}", follow_redirects=False)
        assert response.status_code == 303 and response.headers["location"] == "/ui/login", path
    assert httpx.get(f"{base}/fhir/metadata").json()["resourceType"] == "CapabilityStatement"
    with open_hub(world.home) as hub:
        n_before = hub.store.study_table(VARIABLE_NAMES).n
        with hub.store.engine.connect() as connection:
            pseudonym = connection.exec_driver_sql("SELECT pseudonym FROM study_row WHERE cspca IS NOT NULL AND included LIMIT 1").scalar_one()
    with chromium_page(tmp_path / "chromium-profile") as page:
        sign_in(page, base, world)
        page.click("text=Withdrawals")
        page.fill("input[name=pseudonym]", pseudonym)
        page.fill("input[name=reason]", "patient request of 2026-11-20")
        page.click("button:text-is('Withdraw')")
        page.wait_for_url(f"{base}/ui/withdrawals")
        assert "withdrawn" in page.locator(".message").inner_text()
        assert pseudonym in page.locator("table").inner_text()
    with open_hub(world.home) as hub:
        assert hub.store.study_table(VARIABLE_NAMES).n == n_before - 1
