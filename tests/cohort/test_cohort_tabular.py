"""Tabular extracts (CSV, Parquet) through a declared column mapping into a real hub: the same
validation, harmonisation and extraction as FHIR input, bad cells quarantined with a specific
rule, nothing silently lost. # F-PIL-5, F-IMSD-7, NF-PIL-1, NF-PIL-3"""

from __future__ import annotations

import csv
import json
import subprocess
import tomllib
from collections.abc import Iterator, Sequence
from datetime import date
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from flute.cohort.sim_patients import SimulatedPatient
from flute.cohort.simulate import simulate_sites
from flute.cohort.tabular import TableMapping, TableMappingError, iter_units_from_table, load_mapping
from flute.cohort.variables import AGE, BIOPSY_TYPE, DRE, FAMILY_HISTORY, PIRADS, PROSTATE_VOLUME, PSA, VARIABLE_NAMES
from flute.hub.models import VARIABLE_COLUMNS, StudyRowRecord
from flute.hub.node import Hub, init_hub, open_hub
from flute.hub.summary import quarantined_entries

REPO_ROOT = Path(__file__).resolve().parents[2]
FLUTE = REPO_ROOT / ".venv" / "bin" / "flute"
SEED, SCALE = 5, 0.05

MAPPING_TOML = """
patient_id = "mrn"
age_at_biopsy = "age"
biopsy_type = { column = "biopsy", codes = { initial = 0, repeat = 2 } }
psa = { column = "psa", unit_column = "psa_unit" }
prostate_volume = { column = "volume", unit_column = "volume_unit" }
dre = { column = "dre", codes = { normal = 0, suspicious = 1 } }
pirads = { column = "pirads" }
family_history = { column = "family_history", codes = { no = 0, yes = 1 } }
isup = { column = "isup" }
"""
#: The Parquet variant: birth and biopsy dates instead of the age, a fixed volume unit, and a
#: Gleason column mapped to ISUP grade groups.
DATED_MAPPING = {
    "patient_id": "mrn",
    "birth_date": "born",
    "biopsy_date": "biopsy_day",
    "biopsy_type": {"column": "biopsy", "codes": {"Initial": 0, "Repeat": 2}},
    "psa": {"column": "psa", "unit_column": "psa_unit"},
    "prostate_volume": {"column": "volume", "unit": "mL"},
    "dre": {"column": "dre", "codes": {"normal": 0, "suspicious": 1}},
    "pirads": {"column": "pirads"},
    "family_history": {"column": "family_history", "codes": {"no": 0, "yes": 1}},
    "isup": {"column": "gleason", "codes": {"benign": 0, "3+3": 1, "3+4": 2, "4+3": 3, "8": 4, "9-10": 5}},
}
GLEASON = {0: "benign", 1: "3+3", 2: "3+4", 3: "4+3", 4: "8", 5: "9-10"}
#: PSA written in each of these units in turn; the factor from ng/mL.
PSA_UNITS = (("ng/mL", 1.0), ("ug/L", 1.0), ("ng/dL", 100.0))
VOLUME_UNITS = ("cc", "mL", "cm3")


@pytest.fixture(scope="module")
def patients() -> list[SimulatedPatient]:
    return [p for site in simulate_sites(SEED, SCALE) for p in site.patients]


@pytest.fixture
def mapping(tmp_path: Path) -> TableMapping:
    path = tmp_path / "mapping.toml"
    path.write_text(MAPPING_TOML)
    return load_mapping(path)


def _text(value: float | int | None) -> str:
    return "" if value is None else str(value)


def _cells(p: SimulatedPatient, index: int) -> dict[str, str]:
    """One table row from the patient's expected study row: what a warehouse would export."""
    row = p.expected_row()
    v = row.variables
    psa_unit, factor = PSA_UNITS[index % len(PSA_UNITS)]
    return {
        "mrn": p.id,
        "age": _text(v[AGE]),
        "born": p.birth_date.isoformat(),
        "biopsy_day": p.biopsy_date.isoformat(),
        "biopsy": "repeat" if v[BIOPSY_TYPE] == 2 else "initial",
        "psa": "" if v[PSA] is None else _text(round(float(v[PSA]) * factor, 1)),
        "psa_unit": psa_unit,
        "volume": _text(v[PROSTATE_VOLUME]),
        "volume_unit": VOLUME_UNITS[index % len(VOLUME_UNITS)],
        "dre": {None: "", 0: "normal", 1: "suspicious"}[v[DRE]],  # type: ignore[index]
        "pirads": _text(v[PIRADS]),
        "family_history": "yes" if v[FAMILY_HISTORY] else "no",
        "isup": _text(row.isup),
        "gleason": "" if row.isup is None else GLEASON[row.isup],
    }


def write_csv(path: Path, rows: Sequence[dict[str, str]]) -> Path:
    with path.open("w", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def _hub(home: Path) -> Hub:
    init_hub(home, home.name)
    return open_hub(home)


def _study_rows(hub: Hub) -> dict[str, object]:
    with hub.store.engine.connect() as connection:
        return {row.pseudonym: row for row in connection.execute(select(StudyRowRecord.__table__))}


def _assert_rows_are_expected(hub: Hub, patients: Sequence[SimulatedPatient]) -> None:
    rows = _study_rows(hub)
    assert len(rows) == len(patients)
    for patient in patients:
        expected, row = patient.expected_row(), rows[hub.pseudonymizer.for_patient({"id": patient.id})]
        got = {name: getattr(row, VARIABLE_COLUMNS[name]) for name in VARIABLE_NAMES}
        assert got == {name: expected.variables[name] for name in VARIABLE_NAMES}, patient.id
        assert (row.included, row.isup, row.cspca) == (expected.included, expected.isup, expected.cspca), patient.id


def test_csv_import_gives_the_expected_rows_and_is_idempotent(tmp_path: Path, patients: list[SimulatedPatient], mapping: TableMapping) -> None:
    table = write_csv(tmp_path / "extract.csv", [_cells(p, i) for i, p in enumerate(patients)])
    with _hub(tmp_path / "hub") as hub:
        first = hub.import_table(table, mapping)
        assert first.stored == first.read > 0 and first.quarantined == 0
        _assert_rows_are_expected(hub, patients)
        again = hub.import_table(table, mapping)
        assert (again.unchanged, again.stored, again.quarantined) == (first.read, 0, 0)
        _assert_rows_are_expected(hub, patients)


def test_parquet_import_with_dates_and_gleason_gives_the_expected_rows(tmp_path: Path, patients: list[SimulatedPatient]) -> None:
    rows = [_cells(p, i) for i, p in enumerate(patients)]
    for row in rows:  # typed columns, as a warehouse writes them
        row["biopsy"] = row["biopsy"].capitalize()
    columns = {name: [row[name] or None for row in rows] for name in rows[0]}
    typed = {
        **columns,
        "psa": pa.array([None if v is None else float(v) for v in columns["psa"]], pa.float64()),
        "pirads": pa.array([None if v is None else int(v) for v in columns["pirads"]], pa.int64()),
        "born": pa.array([None if v is None else date.fromisoformat(v) for v in columns["born"]], pa.date32()),
    }
    path = tmp_path / "extract.parquet"
    pq.write_table(pa.table(typed), path, row_group_size=100)
    with _hub(tmp_path / "hub") as hub:
        report = hub.import_table(path, TableMapping.model_validate(DATED_MAPPING))
        assert report.quarantined == 0 and report.stored == report.read
        _assert_rows_are_expected(hub, patients)  # ages from birth and biopsy dates


def test_units_from_unit_columns_are_harmonised(tmp_path: Path, mapping: TableMapping) -> None:
    base = {"mrn": "u-1", "age": "64", "biopsy": "initial", "dre": "normal", "pirads": "3", "family_history": "no", "isup": "1"}
    rows = [
        {**base, "mrn": "u-1", "psa": "4.5", "psa_unit": "ug/L", "volume": "38", "volume_unit": "cc"},
        {**base, "mrn": "u-2", "psa": "455", "psa_unit": "ng/dL", "volume": "41.5", "volume_unit": "cm3"},
        {**base, "mrn": "u-3", "psa": "2.1", "psa_unit": "ng/ml", "volume": "52", "volume_unit": "mL"},
    ]
    with _hub(tmp_path / "hub") as hub:
        hub.import_table(write_csv(tmp_path / "units.csv", rows), mapping)
        stored = _study_rows(hub)
        got = {
            mrn: (getattr(stored[hub.pseudonymizer.for_patient({"id": mrn})], VARIABLE_COLUMNS[PSA]),
                  getattr(stored[hub.pseudonymizer.for_patient({"id": mrn})], VARIABLE_COLUMNS[PROSTATE_VOLUME]))
            for mrn in ("u-1", "u-2", "u-3")
        }
    assert got == {"u-1": (4.5, 38.0), "u-2": (4.6, 41.5), "u-3": (2.1, 52.0)}


GOOD = {"mrn": "ok-1", "age": "66", "biopsy": "repeat", "psa": "6.2", "psa_unit": "ng/mL", "volume": "45", "volume_unit": "mL",
        "dre": "suspicious", "pirads": "4", "family_history": "yes", "isup": "2"}


@pytest.mark.parametrize(
    ("cell", "rule"),
    [
        ({"psa": "abc"}, "table.value"),  # not a number: the converter refuses the cell
        ({"age": "sixty"}, "table.value"),
        ({"dre": "maybe"}, "table.code"),  # a code the mapping does not list
        ({"biopsy": "5"}, "table.code"),  # an integer outside typeOfBiopsy's codes
        ({"isup": "9"}, "table.code"),
        ({"mrn": ""}, "table.value"),
        ({"pirads": "7"}, "pirads.value"),  # convertible, so the validator's own rule judges it
        ({"psa_unit": "mmol/L"}, "psa.unit"),
    ],
)
def test_a_bad_cell_quarantines_its_whole_row_with_a_specific_rule(
    tmp_path: Path, mapping: TableMapping, cell: dict[str, str], rule: str
) -> None:
    table = write_csv(tmp_path / "bad.csv", [GOOD, {**GOOD, "mrn": "bad-1", **cell}])
    with _hub(tmp_path / "hub") as hub:
        report = hub.import_table(table, mapping)
        entries = quarantined_entries(hub.store)
        assert len(_study_rows(hub)) == 1  # the good row is stored; the bad one is not half-stored
    assert report.read == report.stored + report.quarantined and report.quarantined == len(entries) > 0
    assert {e.location for e in entries} == {f"{table}:row 2"}
    rules = [reason["rule"] for e in entries for reason in e.reasons]
    assert rule in rules
    assert set(rules) <= {rule, "transaction.rolled-back"}
    message = next(reason["message"] for e in entries for reason in e.reasons if reason["rule"] == rule)
    if rule.startswith("table."):
        column = next(iter(cell))
        assert f"row 2, column {column!r}" in message and str(table) in message and (cell[column] or "empty") in message


def test_a_mapping_naming_a_missing_column_is_refused_before_reading(tmp_path: Path, mapping: TableMapping) -> None:
    table = write_csv(tmp_path / "short.csv", [{k: v for k, v in GOOD.items() if k != "pirads"}])
    with pytest.raises(TableMappingError) as refused:
        iter_units_from_table(table, mapping)
    assert refused.value.issue.rule == "table.column" and "'pirads'" in str(refused.value)
    with _hub(tmp_path / "hub") as hub, pytest.raises(TableMappingError):
        hub.import_table(table, mapping)


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"colour": "blue"}, "colour"),  # extra fields are forbidden
        ({"birth_date": "born"}, "exactly one of age_at_biopsy or birth_date"),
        ({"dre": {"column": "dre", "codes": {"abnormal": 3}}}, "dre.codes"),
        ({"psa": {"column": "psa"}}, "exactly one of unit"),
    ],
)
def test_a_malformed_mapping_is_refused_with_what_to_fix(tmp_path: Path, change: dict[str, object], words: str) -> None:
    path = tmp_path / "mapping.json"
    path.write_text(json.dumps({**tomllib.loads(MAPPING_TOML), **change}))
    with pytest.raises(TableMappingError) as refused:
        load_mapping(path)
    assert refused.value.issue.rule == "table.mapping" and words in str(refused.value)


def test_hub_cli_imports_a_table_and_refuses_a_missing_column(tmp_path: Path) -> None:
    home, mapping = tmp_path / "hub", tmp_path / "mapping.toml"
    mapping.write_text(MAPPING_TOML)
    table = write_csv(tmp_path / "extract.csv", [GOOD, {**GOOD, "mrn": "ok-2", "psa": "abc"}])

    def flute(*args: str | Path, expect: int = 0) -> str:
        done = subprocess.run([str(FLUTE), *map(str, args)], capture_output=True, text=True, timeout=120)
        assert done.returncode == expect, done.stderr
        return done.stdout if expect == 0 else done.stderr

    flute("hub", "init", "--name", "tabular", "--home", home)
    report = json.loads(flute("hub", "import", "--table", table, "--mapping", mapping, "--home", home, "--json"))
    assert report["quarantined_by_rule"]["table.value"] == 1 and report["read"] == report["stored"] + report["quarantined"]
    short = write_csv(tmp_path / "short.csv", [{k: v for k, v in GOOD.items() if k != "dre"}])
    assert "table.column" in flute("hub", "import", "--table", short, "--mapping", mapping, "--home", home, expect=2)
    assert "exactly one source" in flute("hub", "import", tmp_path, "--table", table, "--mapping", mapping, "--home", home, expect=2)


CELL = st.one_of(
    st.sampled_from(["", " ", "4.5", "455", "7", "0", "-3", "1e999", "nan", "1e-400", "repeat", "normal", "yes", "99999999999999999999",
                     "2021-02-30", "ng/dL", "cc", "mmol/L", "3,5", "\u0660"]),
    st.text(max_size=8),
)


@pytest.fixture(scope="module")
def fuzz_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Hub]]:
    root = tmp_path_factory.mktemp("fuzz")
    with _hub(root / "hub") as hub:
        yield root, hub


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cells=st.lists(st.fixed_dictionaries({name: CELL for name in GOOD}), min_size=1, max_size=4))
def test_random_cells_never_crash_and_every_row_is_stored_or_quarantined(
    fuzz_hub: tuple[Path, Hub], cells: list[dict[str, str]]
) -> None:
    root, hub = fuzz_hub
    mapping = TableMapping.model_validate(tomllib.loads(MAPPING_TOML))
    table = write_csv(root / "fuzz.csv", cells)
    units = list(iter_units_from_table(table, mapping))
    assert len(units) == len(cells) and all(unit.atomic and unit.entries for unit in units)
    for number, unit in enumerate(units, start=1):
        assert {entry.location for entry in unit.entries} == {f"{table}:row {number}"}
        assert all(entry.error.rule.startswith("table.") for entry in unit.entries if entry.error is not None)
    report = hub.import_table(table, mapping)
    assert report.read == sum(len(unit.entries) for unit in units)
    unconvertible = {unit.entries[0].location for unit in units if any(entry.error for entry in unit.entries)}
    assert unconvertible <= {entry.location for entry in quarantined_entries(hub.store, report.batch_id)}
    assert report.read == report.stored + report.unchanged + report.quarantined
