"""Property-based tests of the manifest parser: whatever bytes arrive, the parser either returns a
valid Manifest or raises an ArtifactError subclass with a reason - never anything else."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flute.deploy.errors import ArtifactError, ManifestInvalid, UnknownFormat
from flute.deploy.manifest import Manifest, parse_manifest

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**6), 10**6) | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)


def _paths(document: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix] if prefix else []
    if isinstance(document, dict):
        for key, value in document.items():
            found.extend(_paths(value, (*prefix, key)))
    elif isinstance(document, list):
        for index, value in enumerate(document):
            found.extend(_paths(value, (*prefix, index)))
    return found


def _replace(document: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    head, rest = path[0], path[1:]
    copy = dict(document) if isinstance(document, dict) else list(document)
    copy[head] = _replace(document[head], rest, value)
    return copy


def _parse(data: bytes) -> Manifest | None:
    try:
        return parse_manifest(data, "fuzz")
    except ArtifactError as error:
        assert str(error)
        if isinstance(error, ManifestInvalid):
            assert error.reasons
        return None


@settings(deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_crash_the_parser(data: bytes) -> None:
    _parse(data)


@settings(deadline=None)
@given(JSON_VALUES)
def test_arbitrary_json_is_refused_as_not_a_flute_artifact(value: Any) -> None:
    try:
        parse_manifest(json.dumps(value).encode(), "fuzz")
    except (UnknownFormat, ManifestInvalid):
        return
    raise AssertionError("arbitrary JSON parsed as a manifest")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), replacement=JSON_VALUES)
def test_mutating_any_field_of_a_real_manifest_gives_a_manifest_or_a_reason(artifact: Path, data: st.DataObject, replacement: Any) -> None:
    document = json.loads((artifact / "manifest.json").read_text())
    path = data.draw(st.sampled_from(_paths(document)))
    mutated = _replace(document, path, replacement)
    parsed = _parse(json.dumps(mutated).encode())
    if parsed is not None:  # accepted mutations keep every cross-field invariant
        assert len(parsed.preprocessing.means) == len(parsed.features)
        assert all(scale > 0 for scale in parsed.preprocessing.scales)
        assert "weights.safetensors" in parsed.files


@settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_dropping_any_required_field_names_it(artifact: Path, data: st.DataObject) -> None:
    document = json.loads((artifact / "manifest.json").read_text())
    key = data.draw(st.sampled_from(["model", "features", "preprocessing", "tensors", "provenance", "files"]))
    del document[key]
    try:
        parse_manifest(json.dumps(document).encode(), "fuzz")
    except ManifestInvalid as error:
        assert any(reason.startswith(f"{key}:") for reason in error.reasons)
    else:
        raise AssertionError(f"manifest without {key} was accepted")
