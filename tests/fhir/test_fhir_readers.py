"""Readers (F-HUF-19, F-PIL-5): Bundles by type, single resources, Bulk NDJSON, directories;
every kind of bad input becomes an Issue, never an exception."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from flute.fhir.readers import READER_RULES, ReadLimits, document_units, iter_units, read_file

from .ig_examples import IG_DIR, S1


def _write(path: Path, document: Any) -> Path:
    path.write_bytes(orjson.dumps(document))
    return path


def _observation(resource_id: str, **extra: Any) -> dict[str, Any]:
    return {"resourceType": "Observation", "id": resource_id, "status": "final", **extra}


def test_a_transaction_bundle_is_one_atomic_unit_with_methods_and_resolved_references() -> None:
    (unit,) = list(read_file(S1))
    assert unit.atomic and unit.source == str(S1) and len(unit.entries) == 7
    assert {e.method for e in unit.entries} == {"POST"}
    assert [e.location for e in unit.entries][:2] == [f"{S1}#entry[0]", f"{S1}#entry[1]"]
    biopsy = unit.entries[1].resource
    assert biopsy is not None and biopsy["subject"] == {"reference": "Patient/EXP-S1-Patient"}
    # raw keeps the entry as received, before the fullUrl was resolved
    assert b"urn:uuid:8a80b7e2-1879-418e-92eb-3641846b599c" in unit.entries[1].raw


@pytest.mark.parametrize("bundle_type", ["batch", "collection", "searchset"])
def test_other_bundle_types_give_one_unit_per_entry(tmp_path: Path, bundle_type: str) -> None:
    bundle = {
        "resourceType": "Bundle",
        "type": bundle_type,
        "entry": [
            {"resource": _observation("a"), "request": {"method": "PUT", "url": "Observation/a"}},
            {"resource": _observation("b")},
        ],
    }
    units = list(read_file(_write(tmp_path / "b.json", bundle)))
    assert [(u.atomic, len(u.entries)) for u in units] == [(False, 1), (False, 1)]
    assert [(e.method, e.url) for u in units for e in u.entries] == [("PUT", "Observation/a"), (None, None)]


def test_an_entry_without_id_takes_its_urn_uuid(tmp_path: Path) -> None:
    uuid = "6f1c4a9e-3a56-4f0e-9d7a-2f0b8f0e0c11"
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"fullUrl": f"urn:uuid:{uuid}", "resource": {"resourceType": "Patient"}, "request": {"method": "POST", "url": "Patient"}},
            {"resource": _observation("o", subject={"reference": f"urn:uuid:{uuid}"}), "request": {"method": "POST", "url": "Observation"}},
        ],
    }
    (unit,) = list(read_file(_write(tmp_path / "t.json", bundle)))
    patient, observation = (e.resource for e in unit.entries)
    assert patient == {"resourceType": "Patient", "id": uuid}
    assert observation is not None and observation["subject"] == {"reference": f"Patient/{uuid}"}


def test_delete_entries_carry_their_target_and_templated_urls_are_rejected(tmp_path: Path) -> None:
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [{"request": {"method": "DELETE", "url": "Observation/psa-1"}}]}
    (unit,) = list(read_file(_write(tmp_path / "d.json", bundle)))
    (entry,) = unit.entries
    assert (entry.method, entry.url, entry.resource, entry.error) == ("DELETE", "Observation/psa-1", None, None)
    (teardown,) = list(read_file(IG_DIR / "EXP-Teardown.json"))
    assert {e.error.rule for e in teardown.entries if e.error} == {"reader.request"}


def test_a_single_resource_file(tmp_path: Path) -> None:
    path = _write(tmp_path / "one.json", _observation("x"))
    (unit,) = list(read_file(path))
    (entry,) = unit.entries
    assert entry.location == str(path) and entry.resource == _observation("x") and entry.raw == path.read_bytes()


def test_ndjson_yields_one_unit_per_line_located_by_line_number(tmp_path: Path) -> None:
    path = tmp_path / "Observation.ndjson"
    path.write_bytes(b"".join(orjson.dumps(_observation(f"o{i}")) + b"\n" for i in range(3)) + b"\n\r\n")
    units = list(read_file(path))
    assert [u.entries[0].location for u in units] == [f"{path}:1", f"{path}:2", f"{path}:3"]
    assert [u.entries[0].resource["id"] for u in units] == ["o0", "o1", "o2"]  # type: ignore[index]
    assert all(not u.atomic for u in units)


def test_directories_recurse_in_sorted_order_and_read_only_fhir_files(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    _write(tmp_path / "b" / "2.json", _observation("b2"))
    _write(tmp_path / "a.json", _observation("a"))
    (tmp_path / "c.ndjson").write_bytes(orjson.dumps(_observation("c")) + b"\n")
    (tmp_path / "README.md").write_text("not FHIR")
    ids = [e.resource["id"] for u in iter_units([tmp_path]) for e in u.entries]  # type: ignore[index]
    assert ids == ["a", "b2", "c"]


BAD_DOCUMENTS = [
    (b"{not json", "reader.json"),
    (b"[1, 2]", "reader.not-object"),
    (b'"Patient"', "reader.not-object"),
    (b'{"id": "x"}', "reader.resource-type"),
    (b'{"resourceType": "Bundle", "type": "transactional", "entry": []}', "reader.bundle-type"),
    (b'{"resourceType": "Bundle", "type": "batch", "entry": {"resource": {}}}', "reader.entry"),
    (b'{"resourceType": "Bundle", "type": "batch", "entry": [3]}', "reader.entry"),
    (b'{"resourceType": "Bundle", "type": "batch", "entry": [{"request": {"method": "POST"}}]}', "reader.entry"),
    (b'{"resourceType": "Bundle", "type": "batch", "entry": [{"resource": []}]}', "reader.not-object"),
    (b'{"resourceType": "Bundle", "type": "batch", "entry": [{"resource": {"id": "1"}}]}', "reader.resource-type"),
    (b'{"resourceType": "Bundle", "type": "batch", "entry": [{"resource": {"resourceType": "Patient", "id": "p"}, "request": {"method": "GET", "url": "Patient/p"}}]}', "reader.request"),
]


@pytest.mark.parametrize("data, rule", BAD_DOCUMENTS)
def test_bad_documents_become_error_entries(data: bytes, rule: str) -> None:
    entries = [e for u in document_units(data, "in.json") for e in u.entries]
    assert len(entries) == 1
    (entry,) = entries
    assert entry.resource is None and entry.error is not None
    assert entry.error.rule == rule and entry.error.message.endswith(f"(rule {rule})")
    assert entry.error.location is not None and entry.error.location.startswith("in.json")


def test_a_missing_file_is_an_io_issue(tmp_path: Path) -> None:
    (unit,) = list(iter_units([tmp_path / "absent.json"]))
    assert unit.entries[0].error is not None and unit.entries[0].error.rule == "reader.io"


def test_oversized_resources_are_refused_in_every_format(tmp_path: Path) -> None:
    limits = ReadLimits(max_resource_bytes=200, max_file_bytes=10_000)
    big = _observation("big", note=[{"text": "x" * 300}])
    small = _observation("small")
    ndjson = tmp_path / "o.ndjson"
    ndjson.write_bytes(orjson.dumps(small) + b"\n" + orjson.dumps(big) + b"\n" + orjson.dumps(small) + b"\n")
    found = [(e.location, e.error.rule if e.error else e.resource["id"]) for u in read_file(ndjson, limits) for e in u.entries]  # type: ignore[index]
    assert found == [(f"{ndjson}:1", "small"), (f"{ndjson}:2", "reader.oversized"), (f"{ndjson}:3", "small")]
    single = _write(tmp_path / "big.json", big)
    bundle = _write(tmp_path / "bundle.json", {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": big}, {"resource": small}]})
    huge = _write(tmp_path / "huge.json", {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": small}] * 300})
    rules = [[e.error.rule if e.error else "ok" for u in read_file(p, limits) for e in u.entries] for p in (single, bundle, huge)]
    assert rules == [["reader.oversized"], ["reader.oversized", "ok"], ["reader.oversized"]]


def test_every_reader_rule_has_a_case() -> None:
    assert {rule for _, rule in BAD_DOCUMENTS} | {"reader.io", "reader.oversized"} == set(READER_RULES)
