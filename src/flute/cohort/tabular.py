"""Tabular extracts (CSV, Parquet) with a declared column mapping, as FHIR import units
(F-PIL-5, F-IMSD-7, NF-PIL-1, NF-PIL-3).

Some hospital warehouses export tables, not FHIR. A site declares in a mapping file (TOML or
JSON, `TableMapping`) which column holds which study variable, the unit of each quantity (fixed,
or read from a unit column) and how categorical cells are coded ("repeat" -> 2). Each row then
becomes the IG-profile FHIR resources the simulator writes (the same builders,
flute.cohort.sim_fhir), so the hub validates, stores, harmonises and extracts them exactly as it
does FHIR input: a PI-RADS 7 or a PSA in mmol/L is quarantined under the validator's own rule.

A row is one atomic unit (a per-patient transaction): its resources are stored together or
quarantined together, located as `FILE:row N` (N counts data rows from 1). A cell that cannot
even become FHIR (a number that is not one, a code the mapping does not list) yields an entry
with an Issue `table.value` / `table.code` naming file, row, column, value and the fix, so the
row is quarantined whole and nothing is silently lost. A mapping naming a column the file does
not have is refused before anything is read (`TableMappingError`, rule `table.column`).

Memory is flat: CSV streams through the csv module row by row, Parquet by record batches.

Lives in flute.cohort, not flute.fhir, because it builds resources with the simulator's
builders; flute.fhir must not depend on the simulator.
"""

from __future__ import annotations

import csv
import json
import math
import re
import tomllib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any, Final, TypeVar

import orjson
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from flute.cohort.sim_fhir import (
    ISUP_GRADES,
    JsonObject,
    biopsy_json,
    dre_json,
    family_history_json,
    outcome_json,
    patient_json,
    performed_json,
    pirads_json,
    psa_json,
    volume_json,
)
from flute.cohort.sim_patients import FAMILY_HISTORY_CONDITIONS
from flute.cohort.variables import BIOPSY_TYPE, DRE, FAMILY_HISTORY, VARIABLES_BY_NAME
from flute.fhir import terminology as t
from flute.fhir.issues import Issue, Severity
from flute.fhir.source import ImportUnit, SourceEntry

PARQUET_SUFFIXES: Final = (".parquet", ".pq")
#: Rule ids the tabular reader raises (the validator's own rules judge everything else).
TABLE_RULES: Final = ("table.mapping", "table.column", "table.value", "table.code")
#: A table says only that a relative had prostate cancer: written as "family member" with the
#: VS-PCa code the IG examples use.
_FAMILY_MEMBER: Final = ("FAMMEMB", "family member")
_DECIMAL: Final = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")
_INTEGER: Final = re.compile(r"[+-]?\d+")
_PARQUET_BATCH_ROWS: Final = 4096
#: Whole numbers beyond this many digits are refused: no study value is that long, and JSON
#: integers beyond 64 bits cannot be stored.
_MAX_INTEGER_DIGITS: Final = 15

T = TypeVar("T")
Build = Callable[[], JsonObject | None]


class TableMappingError(ValueError):
    """The mapping file or the table's header cannot be used; `issue` says what and how to fix."""

    def __init__(self, issue: Issue) -> None:
        super().__init__(issue.message)
        self.issue = issue


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CodedColumn(_Strict):
    """A categorical column: `codes` maps cell texts (case-insensitive) to the variable's code;
    a cell that is an integer is taken as the code itself."""

    column: str
    codes: dict[str, int] = {}

    @field_validator("codes")
    @classmethod
    def _casefold(cls, codes: dict[str, int]) -> dict[str, int]:
        folded = {text.strip().casefold(): code for text, code in codes.items()}
        if len(folded) != len(codes):
            raise ValueError("codes lists the same cell text twice (texts are compared case-insensitively)")
        return folded


class QuantityColumn(_Strict):
    """A measured column with its unit: a fixed UCUM `unit`, or a `unit_column` per row."""

    column: str
    unit: str | None = None
    unit_column: str | None = None

    @model_validator(mode="after")
    def _one_unit(self) -> QuantityColumn:
        if (self.unit is None) == (self.unit_column is None):
            raise ValueError(f"column {self.column!r}: give exactly one of unit (e.g. \"ng/mL\") or unit_column")
        return self


class TableMapping(_Strict):
    """Which column holds what (F-IMSD-7). Age: `age_at_biopsy` (years), or `birth_date` with
    `biopsy_date` (ISO dates). `isup` takes ISUP grade groups 0..5; a Gleason column maps its
    texts to grade groups in `codes` ("3+4" = 2)."""

    patient_id: str
    age_at_biopsy: str | None = None
    birth_date: str | None = None
    biopsy_date: str | None = None
    biopsy_type: CodedColumn
    psa: QuantityColumn | None = None
    dre: CodedColumn | None = None
    prostate_volume: QuantityColumn | None = None
    pirads: CodedColumn | None = None
    family_history: CodedColumn | None = None
    isup: CodedColumn | None = None

    @model_validator(mode="after")
    def _consistent(self) -> TableMapping:
        if (self.age_at_biopsy is None) == (self.birth_date is None):
            raise ValueError("give exactly one of age_at_biopsy or birth_date")
        if self.birth_date is not None and self.biopsy_date is None:
            raise ValueError("birth_date needs biopsy_date, to compute the age at biopsy")
        if self.age_at_biopsy is not None and self.biopsy_date is not None:
            raise ValueError("biopsy_date is used with birth_date; with age_at_biopsy leave it out (the biopsy is written with its age)")
        for field, allowed in _ALLOWED_CODES.items():
            coded = getattr(self, field)
            wrong = {text: code for text, code in (coded.codes.items() if coded else ()) if code not in allowed}
            if wrong:
                raise ValueError(f"{field}.codes {wrong} are not among its codes {sorted(allowed)}")
        return self

    def columns(self) -> list[str]:
        """Every column the mapping reads, in declaration order."""
        named: list[str] = []
        for value in self.__dict__.values():
            if isinstance(value, str):
                named.append(value)
            elif isinstance(value, CodedColumn):
                named.append(value.column)
            elif isinstance(value, QuantityColumn):
                named.extend(c for c in (value.column, value.unit_column) if c is not None)
        return list(dict.fromkeys(named))


_ALLOWED_CODES: Final[Mapping[str, frozenset[int]]] = {
    "biopsy_type": frozenset(VARIABLES_BY_NAME[BIOPSY_TYPE].codes),
    "dre": frozenset(VARIABLES_BY_NAME[DRE].codes),
    "family_history": frozenset(VARIABLES_BY_NAME[FAMILY_HISTORY].codes),
    "isup": ISUP_GRADES,
}


def load_mapping(path: Path) -> TableMapping:
    """The mapping in a .toml or .json file; TableMappingError says what is wrong in it."""
    try:
        text = path.read_text(encoding="utf-8")
        data = json.loads(text) if path.suffix.lower() == ".json" else tomllib.loads(text)
        return TableMapping.model_validate(data)
    except (OSError, ValueError) as error:  # json/toml decode errors and ValidationError are ValueErrors
        detail = _validation_detail(error) if isinstance(error, ValidationError) else str(error)
        raise TableMappingError(_issue("table.mapping", f"mapping {path} cannot be used: {detail}", str(path), "invalid")) from error


def _validation_detail(error: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(part) for part in e['loc']) or 'mapping'}: {e['msg']}" for e in error.errors())


def iter_units_from_table(path: Path, mapping: TableMapping) -> Iterator[ImportUnit]:
    """One atomic unit per row of the CSV or Parquet file at `path` (see the module doc).
    Checks the header now (TableMappingError, rule table.column); reads rows lazily."""
    header = _parquet_header(path) if _is_parquet(path) else _csv_header(path)
    missing = [column for column in mapping.columns() if column not in header]
    if missing:
        message = (
            f"{path}: the mapping names column(s) {', '.join(map(repr, missing))} that the table does not have "
            f"(its columns: {', '.join(map(repr, header))}); fix the mapping or the export"
        )
        raise TableMappingError(_issue("table.column", message, str(path), "not-found"))
    rows = _parquet_rows(path, mapping.columns()) if _is_parquet(path) else _csv_rows(path)
    return (_RowConverter(mapping, str(path), number, row).unit() for number, row in enumerate(rows, start=1))


def _is_parquet(path: Path) -> bool:
    return path.name.lower().endswith(PARQUET_SUFFIXES)


def _csv_header(path: Path) -> list[str]:
    with path.open(newline="", encoding="utf-8-sig") as stream:
        return next(csv.reader(stream), [])


def _csv_rows(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(newline="", encoding="utf-8-sig") as stream:
        yield from csv.DictReader(stream)


def _parquet_header(path: Path) -> list[str]:
    import pyarrow.parquet as pq

    return list(pq.ParquetFile(path).schema_arrow.names)


def _parquet_rows(path: Path, columns: list[str]) -> Iterator[dict[str, Any]]:
    import pyarrow.parquet as pq

    with pq.ParquetFile(path) as table:
        for batch in table.iter_batches(batch_size=_PARQUET_BATCH_ROWS, columns=columns):
            yield from batch.to_pylist()


def _cell_text(value: object) -> str | None:
    """A cell as text; None when empty (blank, null, NaN). Integral floats (Parquet numbers
    in a float column) lose their '.0', so 3.0 reads as the code 3."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, float) and value.is_integer() and math.isfinite(value):
        return str(int(value))
    if isinstance(value, (date, datetime)):
        return value.isoformat()[:10]
    text = str(value).strip()
    return text or None


class _BadCell(Exception):
    """A cell that cannot become FHIR; carries the Issue that says so."""

    def __init__(self, issue: Issue) -> None:
        super().__init__(issue.message)
        self.issue = issue


@dataclass
class _RowConverter:
    """One row into its resources, collecting one Issue per unusable cell."""

    mapping: TableMapping
    source: str
    number: int
    row: Mapping[str, Any]

    @property
    def location(self) -> str:
        return f"{self.source}:row {self.number}"

    def unit(self) -> ImportUnit:
        resources: list[JsonObject] = []
        issues: list[Issue] = []
        patient_id = self._attempt(issues, lambda: self._required(self.mapping.patient_id))
        if patient_id is not None:
            for build in self._builders(patient_id):
                resource = self._attempt(issues, build)
                if resource is not None:
                    resources.append(resource)
        raw = orjson.dumps({column: _cell_text(self.row.get(column)) for column in self.mapping.columns()})
        entries = [SourceEntry(self.location, raw, None, issue) for issue in issues]
        entries.extend(
            SourceEntry(self.location, orjson.dumps(r), r, method="PUT", url=f"{r['resourceType']}/{r['id']}") for r in resources
        )
        return ImportUnit(self.source, atomic=True, entries=tuple(entries))

    def _attempt(self, issues: list[Issue], build: Callable[[], T]) -> T | None:
        try:
            return build()
        except _BadCell as bad:
            issues.append(bad.issue)
            return None

    def _builders(self, patient_id: str) -> list[Build]:
        m = self.mapping
        builders: list[Build] = [lambda: self._patient(patient_id), lambda: self._biopsy(patient_id)]
        if (psa := m.psa) is not None:
            builders.append(lambda: self._quantity(psa, lambda v, u: psa_json(patient_id, f"{patient_id}-psa", v, u, None)))
        if (volume := m.prostate_volume) is not None:
            builders.append(lambda: self._quantity(volume, lambda v, u: volume_json(patient_id, v, u, None)))
        if m.dre is not None:
            outcomes = {0: t.DRE_NORMAL, 1: t.DRE_SUSPICIOUS}
            builders.append(lambda: self._coded("dre", lambda code: dre_json(patient_id, outcomes[code], {})))
        if m.pirads is not None:
            builders.append(lambda: self._coded("pirads", lambda score: pirads_json(patient_id, score, None)))
        if m.family_history is not None:
            builders.append(lambda: self._coded("family_history", lambda yes: self._family_history(patient_id, yes)))
        if m.isup is not None:
            builders.append(lambda: self._coded("isup", lambda grade: outcome_json(patient_id, grade, None)))
        return builders

    def _patient(self, patient_id: str) -> JsonObject:
        birth = self._date(self.mapping.birth_date) if self.mapping.birth_date else None
        return patient_json(patient_id, birth)

    def _biopsy(self, patient_id: str) -> JsonObject:
        m = self.mapping
        when = self._date(m.biopsy_date) if m.biopsy_date else None
        age = self._integer(m.age_at_biopsy) if m.age_at_biopsy else None
        biopsy_type = self._code("biopsy_type")
        if biopsy_type is None:
            raise _BadCell(self._cell_issue("table.value", m.biopsy_type.column, None, "is empty; every row needs its biopsy type"))
        return biopsy_json(patient_id, biopsy_type == 2, performed_json(when, age))

    def _family_history(self, patient_id: str, yes: int) -> JsonObject | None:
        return family_history_json(patient_id, None, FAMILY_HISTORY_CONDITIONS[0], _FAMILY_MEMBER) if yes else None

    def _quantity(self, spec: QuantityColumn, build: Callable[[float | int, str], JsonObject]) -> JsonObject | None:
        text = _cell_text(self.row.get(spec.column))
        if text is None:
            return None
        if not _DECIMAL.fullmatch(text) or not math.isfinite(float(text)):
            raise _BadCell(self._cell_issue("table.value", spec.column, text, "is not a decimal number; write it like 4.5 (a point, no unit or thousands separator)"))
        unit = spec.unit if spec.unit is not None else _cell_text(self.row.get(spec.unit_column or ""))
        if unit is None:
            raise _BadCell(self._cell_issue("table.value", spec.unit_column or "", None, f"is empty, so the unit of {spec.column!r} {text} is unknown; fill it in"))
        whole = _INTEGER.fullmatch(text) is not None and len(text.lstrip("+-")) <= _MAX_INTEGER_DIGITS
        return build(int(text) if whole else float(text), unit)

    def _coded(self, field: str, build: Callable[[int], JsonObject | None]) -> JsonObject | None:
        code = self._code(field)
        return None if code is None else build(code)

    def _code(self, field: str) -> int | None:
        """The code in the cell of the mapping's coded `field` (e.g. "dre"); None when empty."""
        spec: CodedColumn = getattr(self.mapping, field)
        text = _cell_text(self.row.get(spec.column))
        if text is None:
            return None
        code = spec.codes.get(text.casefold())
        if code is None and _INTEGER.fullmatch(text) and len(text.lstrip("+-")) <= _MAX_INTEGER_DIGITS:
            code = int(text)
        allowed = _ALLOWED_CODES.get(field)
        if code is None or (allowed is not None and code not in allowed):
            fix = f"add it to the mapping's {field}.codes, e.g. {text!r} = <code>" + (f" with a code in {sorted(allowed)}" if allowed else "")
            raise _BadCell(self._cell_issue("table.code", spec.column, text, f"has no code in the mapping; {fix}"))
        return code

    def _integer(self, column: str) -> int | None:
        text = _cell_text(self.row.get(column))
        if text is None:
            return None
        if not _INTEGER.fullmatch(text) or len(text.lstrip("+-")) > _MAX_INTEGER_DIGITS:
            raise _BadCell(self._cell_issue("table.value", column, text, "is not a whole number; write it like 67"))
        return int(text)

    def _date(self, column: str) -> date | None:
        text = _cell_text(self.row.get(column))
        if text is None:
            return None
        try:
            return datetime.fromisoformat(text).date()  # a date, or a date and time
        except ValueError:
            raise _BadCell(self._cell_issue("table.value", column, text, "is not an ISO date; write it like 2021-03-14")) from None

    def _required(self, column: str) -> str:
        text = _cell_text(self.row.get(column))
        if text is None:
            raise _BadCell(self._cell_issue("table.value", column, None, "is empty; every row needs a patient id"))
        return text

    def _cell_issue(self, rule: str, column: str, value: str | None, problem: str) -> Issue:
        shown = "the cell" if value is None else f"value {value!r}"
        message = f"{self.location}, column {column!r}: {shown} {problem}"
        return _issue(rule, message, self.location, "value" if rule == "table.value" else "code-invalid", column)


def _issue(rule: str, text: str, location: str, code: str, path: str | None = None) -> Issue:
    return Issue(Severity.ERROR, rule, f"{text} (rule {rule})", path=path, location=location, code=code)
