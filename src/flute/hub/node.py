"""A hub assembled from its home: configuration, pseudonym key and store - what the CLI and the
hub's services open. Keeps the rule "one import at a time per hub" in one place."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from sqlalchemy.engine import make_url

from flute.fhir.extract import InclusionRule
from flute.fhir.source import ImportUnit
from flute.governance.audit import AuditTrail, bind_trail
from flute.governance.keys import NodeKeyError, load_node_keys
from flute.hub.home import HubConfig, HubHomeError, connection_url, import_lock, load_config, load_key, new_config, write_home
from flute.hub.ingest import DEFAULT_CHUNK_ENTRIES, BatchReport, Ingestor
from flute.hub.pseudonym import Pseudonymizer
from flute.hub.store import HubStore, create_store_engine, upgrade_schema

if TYPE_CHECKING:
    from flute.cohort.tabular import TableMapping


@dataclass
class Hub:
    home: Path
    config: HubConfig
    store: HubStore
    pseudonymizer: Pseudonymizer

    def __enter__(self) -> Hub:
        return self

    def __exit__(self, _type: type[BaseException] | None, _value: BaseException | None, _tb: TracebackType | None) -> None:
        self.store.close()

    def import_units(
        self, units: Iterable[ImportUnit], source: str, *, rule: InclusionRule | None = None, chunk_entries: int = DEFAULT_CHUNK_ENTRIES,
        two_processes: bool = False,
    ) -> BatchReport:
        with import_lock(self.home):
            return Ingestor(self.store, self.pseudonymizer, rule=rule, chunk_entries=chunk_entries).run(units, source, two_processes=two_processes)

    def import_paths(
        self, paths: Sequence[Path], *, rule: InclusionRule | None = None, chunk_entries: int = DEFAULT_CHUNK_ENTRIES,
        two_processes: bool | None = None,
    ) -> BatchReport:
        """Import FHIR files and directories of them (Bundles, NDJSON) read by
        `flute.fhir.readers` (F-PIL-5). `two_processes`: read and validate in a helper process
        (`flute.hub.pipeline`); by default when the input is large and a second core is idle."""
        from flute.fhir.readers import iter_units
        from flute.hub.pipeline import worth_two_processes

        missing = [str(p) for p in paths if not p.exists()]
        if missing:
            raise FileNotFoundError(f"cannot import: {', '.join(missing)} not found")
        files = patient_files_first(paths)
        return self.import_units(
            iter_units(files), ", ".join(str(p) for p in paths), rule=rule, chunk_entries=chunk_entries,
            two_processes=worth_two_processes(files) if two_processes is None else two_processes,
        )

    def import_table(
        self, path: Path, mapping: TableMapping, *, rule: InclusionRule | None = None, chunk_entries: int = DEFAULT_CHUNK_ENTRIES
    ) -> BatchReport:
        """Import a CSV or Parquet extract through its declared column mapping (F-IMSD-7): each
        row becomes IG-profile FHIR, validated and stored like FHIR input. A mapping naming a
        column the table lacks raises TableMappingError before a batch is started."""
        from flute.cohort.tabular import iter_units_from_table

        if not path.is_file():
            raise FileNotFoundError(f"cannot import: {path} not found")
        units = iter_units_from_table(path, mapping)
        return self.import_units(units, str(path), rule=rule, chunk_entries=chunk_entries)

    def import_from_server(
        self, base_url: str, *, headers: Mapping[str, str] | None = None, rule: InclusionRule | None = None,
        chunk_entries: int = DEFAULT_CHUNK_ENTRIES,
    ) -> BatchReport:
        """Import every study resource from the hospital's FHIR server (F-STD-9), Patients first."""
        from flute.fhir.rest import iter_units_from_server

        units = iter_units_from_server(base_url, headers=headers)
        return self.import_units(units, base_url, rule=rule, chunk_entries=chunk_entries)


def patient_files_first(paths: Sequence[Path]) -> list[Path]:
    """The files to read, directories expanded as the reader expands them, with Bulk Data
    Patient files (Patient.ndjson, Patient_1.ndjson, ...) first: data whose Patient has not been
    read yet waits in memory until the end of the batch, and alphabetical order would read
    FamilyMemberHistory and Observation before Patient."""
    from flute.fhir.readers import JSON_SUFFIXES, NDJSON_SUFFIXES

    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted(p for p in path.rglob("*") if p.is_file() and p.name.endswith(JSON_SUFFIXES + NDJSON_SUFFIXES)))
        else:
            files.append(path)
    return sorted(files, key=lambda file: not (file.name.startswith("Patient") and file.name.endswith(NDJSON_SUFFIXES)))


def init_hub(home: Path, name: str, db_url: str | None = None) -> HubConfig:
    """Create a hub: migrate its database to the current schema, then write config and key."""
    config = new_config(home, name, db_url)
    home.mkdir(parents=True, exist_ok=True)
    HubStore.create(db_url or config.database_url(home)).close()
    write_home(home, config, make_url(db_url).password if db_url else None)
    return config


def open_hub(home: Path) -> Hub:
    """The hub at `home`. Its audit trail, keyed by the home's audit key, is bound to the
    store's engine, so imports, withdrawals and budget charges are audited (F-SRS-8)."""
    config = load_config(home)
    pseudonymizer = Pseudonymizer(load_key(home), config.source_namespace)
    try:
        audit_key = load_node_keys(home).audit_key
    except NodeKeyError as exc:
        raise HubHomeError(str(exc)) from exc
    store = HubStore.open(connection_url(home, config))
    bind_trail(store.engine, AuditTrail(key=audit_key))
    return Hub(home=home, config=config, store=store, pseudonymizer=pseudonymizer)


def upgrade_hub(home: Path) -> None:
    """Apply pending schema migrations to an existing hub's database."""
    engine = create_store_engine(connection_url(home, load_config(home)))
    try:
        upgrade_schema(engine)
    finally:
        engine.dispose()
