"""Parsers of what crosses the network (catalogue entries, access requests and decisions) either
return a valid object or raise their own clear error - never a crash of another kind - and
round-trip what they accept."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from flute.cohort.variables import VARIABLE_NAMES
from flute.governance.access import AccessDecision, AccessError, AccessRequest
from flute.governance.catalogue import AVAILABILITY_ORDER, SIZE_BUCKETS, CatalogueError, DatasetMetadata

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)
FIELDS = ("hub", "dataset", "title", "description", "conditions_of_use", "contact", "guidance", "coverage_start",
          "coverage_end", "open_access", "exact_size_allowed", "size", "variables", "data_as_of", "published_at")


def _valid_entry() -> st.SearchStrategy[dict[str, object]]:
    return st.fixed_dictionaries(
        {
            "hub": st.from_regex(r"[a-z][a-z0-9-]{0,20}", fullmatch=True),
            "dataset": st.from_regex(r"[a-z0-9][a-z0-9._-]{0,30}", fullmatch=True),
            "title": st.text(min_size=1, max_size=30).filter(str.strip),
            "description": st.text(max_size=60),
            "conditions_of_use": st.text(min_size=1, max_size=60).filter(str.strip),
            "contact": st.text(min_size=1, max_size=30).filter(str.strip),
            "guidance": st.text(max_size=60),
            "coverage_start": st.none(),
            "coverage_end": st.none(),
            "open_access": st.booleans(),
            "exact_size_allowed": st.just(False),
            "size": st.sampled_from([label for _, label in SIZE_BUCKETS]),
            "variables": st.dictionaries(st.sampled_from(VARIABLE_NAMES), st.sampled_from(AVAILABILITY_ORDER)),
            "data_as_of": st.none(),
            "published_at": st.datetimes(timezones=st.just(UTC)).map(datetime.isoformat),
        }
    )


@settings(deadline=None)
@given(_valid_entry())
def test_valid_entries_round_trip(entry: dict[str, object]) -> None:
    parsed = DatasetMetadata.from_json(entry)
    assert DatasetMetadata.from_json(parsed.to_json()) == parsed


@settings(deadline=None)
@given(_valid_entry(), st.sampled_from(FIELDS), JSON)
def test_damaged_entries_fail_with_a_catalogue_error(entry: dict[str, object], field: str, value: object) -> None:
    damaged = {**entry, field: value}
    try:
        DatasetMetadata.from_json(damaged)
    except CatalogueError as exc:
        assert str(exc).startswith("catalogue entry")


@settings(deadline=None)
@given(st.dictionaries(st.sampled_from(("request_id", "study", "researcher", "researcher_org", "hub", "dataset", "fields",
                                        "purpose", "epsilon", "delta", "status", "created_at", "approved", "reason",
                                        "decided_by", "decided_at")), JSON, max_size=16))
def test_request_and_decision_parsers_raise_only_access_errors(data: dict[str, object]) -> None:
    for parse in (AccessRequest.from_json, AccessDecision.from_json):
        try:
            parse(data)
        except AccessError:
            pass
