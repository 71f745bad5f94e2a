"""The catalogue (NF-PIL-6/8, F-PIL-16/18/19, NF-PIL-7): bucketed sizes and availability bands,
metadata computed from a real hub store, safe markdown, search, publication to the coordinator
registry and policy acceptance before access requests."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from flute.cohort.table import StudyTable
from flute.cohort.variables import VARIABLE_NAMES
from flute.coordinator.registry import PoliciesNotAccepted
from flute.governance.access import AccessError
from flute.governance.catalogue import (
    AVAILABILITY_ORDER, SIZE_BUCKETS, CatalogueError, CatalogueQuery, DatasetDeclaration, DatasetMetadata,
    availability_band, compute_metadata, search, size_bucket,
)
from flute.governance.documents import PolicyKind, current_policy, guidance_documents, render_markdown
from flute.hub.consent import ConsentRegister
from flute.hub.node import open_hub

from .ui_support import DECLARATION, HUB, RESEARCHER, RESEARCHER_ORG, coordinator_registry, file_request, filled_hub

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("count", "bucket"),
    [(0, "<100"), (99, "<100"), (100, "100-499"), (499, "100-499"), (500, "500-999"), (999, "500-999"), (1000, "1000-4999"), (4999, "1000-4999"), (5000, ">=5000")],
)
def test_size_bucket_boundaries(count: int, bucket: str) -> None:
    assert size_bucket(count) == bucket


@given(st.integers(min_value=0, max_value=10**7), st.integers(min_value=0, max_value=10**7))
def test_size_buckets_are_monotonic_and_hide_the_count(a: int, b: int) -> None:
    labels = [label for _, label in SIZE_BUCKETS]
    low, high = sorted((a, b))
    assert labels.index(size_bucket(low)) <= labels.index(size_bucket(high))
    assert size_bucket(a) in labels and not size_bucket(a).isdigit()


@given(st.floats(min_value=0.0, max_value=1.0))
def test_availability_band_is_monotonic(share: float) -> None:
    band = availability_band(share)
    assert band in AVAILABILITY_ORDER
    assert (band == "none") == (share == 0.0)
    assert (band == "100%") == (share == 1.0)


def test_invalid_inputs_are_refused_with_the_reason() -> None:
    with pytest.raises(CatalogueError, match="negative"):
        size_bucket(-1)
    with pytest.raises(CatalogueError, match=r"\[0, 1\]"):
        availability_band(1.5)
    with pytest.raises(CatalogueError, match="dataset id 'Bad Id'"):
        DatasetDeclaration("Bad Id", "t", "d", "conditions", "contact")
    with pytest.raises(CatalogueError, match="conditions_of_use must not be empty"):
        DatasetDeclaration("ok", "t", "d", " ", "contact")
    with pytest.raises(CatalogueError, match="unknown variable"):
        CatalogueQuery(variables=("gleason",))


def _table(n: int, missing_psa: int) -> StudyTable:
    features = np.ones((n, len(VARIABLE_NAMES)))
    features[:missing_psa, VARIABLE_NAMES.index("psa")] = np.nan
    features[:, VARIABLE_NAMES.index("prostateVolume")] = np.nan
    return StudyTable(VARIABLE_NAMES, features, np.zeros(n, dtype=np.int64))


def test_metadata_publishes_buckets_unless_the_owner_allows_exact_counts() -> None:
    entry = compute_metadata(HUB, DECLARATION, _table(612, 100), data_as_of=None, published_at=NOW)
    assert entry.size == "500-999"
    assert entry.band_of("psa") == "50-89%" and entry.band_of("prostateVolume") == "none" and entry.band_of("pirads") == "100%"
    assert "612" not in str(entry.to_json())
    exact = DatasetDeclaration(**{**DECLARATION.__dict__, "exact_size_allowed": True})
    assert compute_metadata(HUB, exact, _table(612, 0), data_as_of=None, published_at=NOW).size == "612"
    assert DatasetMetadata.from_json(entry.to_json()) == entry


def test_search_by_text_and_variable() -> None:
    first = compute_metadata("hospital-a", DECLARATION, _table(150, 0), data_as_of=None, published_at=NOW)
    other = DatasetDeclaration("mri-volumes", "MRI volumes", "Prostate volume from MRI reports", "research only", "x@y")
    second = compute_metadata("hospital-b", other, _table(150, 140), data_as_of=None, published_at=NOW)
    assert search([first, second], CatalogueQuery(text="BIOPSY cohort")) == [first]
    assert search([first, second], CatalogueQuery(text="volume")) == [second]
    assert search([second, first], CatalogueQuery()) == [first, second]
    assert search([first, second], CatalogueQuery(variables=("psa",), min_band="90-99%")) == [first]
    assert search([first, second], CatalogueQuery(variables=("prostateVolume",))) == []
    assert search([first, second], CatalogueQuery(hubs=("hospital-b",))) == [second]


def test_markdown_is_rendered_without_script_or_javascript_links() -> None:
    html = str(render_markdown("**bold** <script>alert(1)</script> [x](javascript:alert(1)) [ok](https://example.org)"))
    assert "<strong>bold</strong>" in html and "<script>" not in html and "&lt;script&gt;" in html
    assert 'href="javascript:' not in html and 'href="https://example.org"' in html


def test_policies_and_guidance_ship_with_versions() -> None:
    assert current_policy(PolicyKind.TERMS).version >= 1 and "terms" in current_policy(PolicyKind.TERMS).title.lower()
    assert "privacy" in current_policy(PolicyKind.PRIVACY).title.lower()
    assert guidance_documents() and guidance_documents()[0].title


def test_hub_publishes_to_the_registry_and_researchers_search_and_request(tmp_path: Path) -> None:
    home = filled_hub(tmp_path)
    with open_hub(home) as hub:
        register = ConsentRegister(hub.store, HUB, None)
        register.declare(DECLARATION, "owner")
        entries = register.catalogue_entries()
        n = hub.store.study_table(VARIABLE_NAMES).n
    assert [e.declaration.dataset for e in entries] == [DECLARATION.dataset]
    assert entries[0].size == size_bucket(n) and entries[0].data_as_of is not None
    assert entries[0].band_of("psa") != "none"
    registry = coordinator_registry(tmp_path / "coordinator")
    registry.publish(HUB, entries, "owner")
    assert registry.search(CatalogueQuery(text="biopsy", variables=("psa",))) == entries
    with pytest.raises(CatalogueError, match="cannot publish entries of other hubs"):
        registry.publish("hospital-b", entries, "owner")

    with pytest.raises(PoliciesNotAccepted, match="accept the current terms and privacy"):
        file_request(registry)
    registry.accept_policy(RESEARCHER, PolicyKind.TERMS, current_policy(PolicyKind.TERMS).version)
    assert registry.policies_to_accept(RESEARCHER) == [PolicyKind.PRIVACY]
    registry.accept_policy(RESEARCHER, PolicyKind.PRIVACY, current_policy(PolicyKind.PRIVACY).version)
    with pytest.raises(CatalogueError, match="no dataset 'nope'"):
        registry.request_access(study="s", researcher=RESEARCHER, researcher_org=RESEARCHER_ORG, hub=HUB, dataset="nope",
                                fields=("psa",), purpose="p", epsilon=1.0, delta=0.0)
    with pytest.raises(AccessError, match="unknown field"):
        file_request(registry, fields=("psa", "gleason"))
    request = file_request(registry)
    assert registry.pending_requests(HUB) == [request]
    assert registry.pending_requests("hospital-b") == []
