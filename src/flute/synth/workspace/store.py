"""The synthetic-data workspace store: versioned saved generators and datasets (F-IMSD-12/15),
hyperparameter drafts (F-IMSD-2/10) and usage metering (NF-IMSD-7).

Registering an artefact is all-or-nothing: its files are written under `staging/`, hashed, and
moved to `KIND/NAME/vN/` inside the transaction that inserts its row (after the row has taken
its (name, version) slot, so two writers never share a version); a crash before the commit
leaves at most an unreferenced folder, which the next registration of that version replaces.
A version that has a row always has its files.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import re
import shutil
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, func, select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from flute.synth.generators import FittedGenerator, GeneratorError, generator
from flute.synth.workspace.home import STAGING_DIR, WorkspaceError, read_config
from flute.synth.workspace.models import DatasetRecord, DraftRecord, GeneratorRecord, UsageRecord

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
CSV_FILE = "data.csv"
SCHEMA_FILE = "data.schema.json"
REPORT_FILE = "report.html"
REGISTER_ATTEMPTS = 8

Versioned = TypeVar("Versioned", GeneratorRecord, DatasetRecord)


def now() -> datetime:
    return datetime.now(UTC)


def as_utc(moment: datetime) -> datetime:
    """SQLite returns naive timestamps; every one this store writes is UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_name(name: str, what: str) -> str:
    if not NAME_PATTERN.match(name):
        raise WorkspaceError(f"{what} name {name!r} is not allowed: use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit")
    return name


@dataclass(frozen=True)
class Reference:
    """`NAME` (the latest version) or `NAME:VERSION`."""

    name: str
    version: int | None = None

    @classmethod
    def parse(cls, text: str) -> Reference:
        name, _, version = text.partition(":")
        if version and not version.isdigit():
            raise WorkspaceError(f"{text!r}: write NAME or NAME:VERSION (VERSION a number)")
        return cls(name, int(version) if version else None)

    def __str__(self) -> str:
        return self.name if self.version is None else f"{self.name}:{self.version}"


@dataclass(frozen=True)
class SavedGenerator:
    id: int
    name: str
    version: int
    generator: str
    study: str
    hubs: tuple[str, ...]
    epsilon: float | None
    delta: float | None
    hyperparameters: dict[str, Any]
    provenance: dict[str, Any]
    directory: Path
    created_by: str
    created_at: datetime

    @classmethod
    def of(cls, row: GeneratorRecord, home: Path) -> SavedGenerator:
        return cls(
            row.id, row.name, row.version, row.generator, row.study, tuple(json.loads(row.hubs_json)), row.epsilon, row.delta,
            json.loads(row.hyperparameters_json), json.loads(row.provenance_json), home / row.directory, row.created_by, as_utc(row.created_at),
        )

    def to_json(self) -> dict[str, Any]:
        """What a client may see (no server paths)."""
        return {
            "name": self.name, "version": self.version, "generator": self.generator, "study": self.study, "hubs": list(self.hubs),
            "epsilon": self.epsilon, "delta": self.delta, "hyperparameters": self.hyperparameters, "created_by": self.created_by,
            "created_at": self.created_at.isoformat(),
        }


@dataclass(frozen=True)
class DatasetVersion:
    id: int
    name: str
    version: int
    generator_id: int
    generator: str
    hyperparameters: dict[str, Any]
    epsilon: float | None
    delta: float | None
    study: str
    hubs: tuple[str, ...]
    conditions: str
    rows: int
    seed: int | None
    csv: Path
    csv_sha256: str
    schema: Path
    schema_sha256: str
    evaluation: dict[str, Any] | None
    report: Path | None
    report_sha256: str | None
    created_by: str
    created_at: datetime

    @classmethod
    def of(cls, row: DatasetRecord, home: Path) -> DatasetVersion:
        return cls(
            row.id, row.name, row.version, row.generator_id, row.generator, json.loads(row.hyperparameters_json), row.epsilon, row.delta,
            row.study, tuple(json.loads(row.hubs_json)), row.conditions, row.rows, row.seed, home / row.csv_path, row.csv_sha256,
            home / row.schema_path, row.schema_sha256, None if row.evaluation_json is None else json.loads(row.evaluation_json),
            None if row.report_path is None else home / row.report_path, row.report_sha256, row.created_by, as_utc(row.created_at),
        )

    def to_json(self) -> dict[str, Any]:
        """What a client may see (file names, not server paths)."""
        return {
            "name": self.name, "version": self.version, "generator": self.generator, "hyperparameters": self.hyperparameters,
            "epsilon": self.epsilon, "delta": self.delta, "study": self.study, "hubs": list(self.hubs), "conditions": self.conditions,
            "rows": self.rows, "seed": self.seed, "csv_sha256": self.csv_sha256, "schema_sha256": self.schema_sha256,
            "evaluation": self.evaluation, "report_sha256": self.report_sha256, "created_by": self.created_by, "created_at": self.created_at.isoformat(),
        }


@dataclass(frozen=True)
class Usage:
    """What one user consumed (NF-IMSD-7)."""

    user: str
    trainings: int
    rows_generated: int
    evaluations: int
    cpu_seconds: float

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class SynthWorkspace:
    """The workspace at `home` (see `flute.synth.workspace.home`); `open` creates or migrates it."""

    def __init__(self, home: Path, engine: Engine) -> None:
        self.home = home
        self.engine = engine

    @classmethod
    def open(cls, home: Path) -> SynthWorkspace:
        """Open (creating and migrating to the head if needed) and import the configured plugins."""
        from flute.hub.store import create_store_engine

        home.mkdir(parents=True, exist_ok=True)
        config = read_config(home)
        for module in config.plugins:
            try:
                importlib.import_module(module)
            except ImportError as exc:
                raise WorkspaceError(f"{home}: plugin module {module!r} cannot be imported ({exc})") from exc
        engine = create_store_engine(config.db_url)
        try:
            with engine.begin() as connection:
                alembic = Config()
                alembic.set_main_option("script_location", str(MIGRATIONS_DIR))
                alembic.attributes["connection"] = connection
                if MigrationContext.configure(connection).get_current_revision() != ScriptDirectory.from_config(alembic).get_current_head():
                    command.upgrade(alembic, "head")
        except OperationalError as exc:
            engine.dispose()
            raise WorkspaceError(f"cannot use the workspace database {engine.url.render_as_string(hide_password=True)}: {exc.orig}") from exc
        return cls(home, engine)

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> SynthWorkspace:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    @contextmanager
    def staging(self) -> Iterator[Path]:
        """A fresh folder for files being written; removed afterwards unless registered."""
        folder = self.home / STAGING_DIR / uuid.uuid4().hex
        folder.mkdir(parents=True)
        try:
            yield folder
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    # -- saved generators (F-IMSD-15) ------------------------------------------------------

    def save_generator(self, name: str, plugin: str, fitted: FittedGenerator, study: str, hyperparameters: Mapping[str, Any], user: str) -> SavedGenerator:
        """Save `fitted` as the next version of `name`."""
        check_name(name, "generator")
        provenance = dict(fitted.provenance)
        with self.staging() as folder:
            fitted.save(folder)

            def row(version: int, directory: str) -> GeneratorRecord:
                return GeneratorRecord(
                    name=name, version=version, generator=plugin, study=study, hubs_json=json.dumps(list(provenance.get("hubs", []))),
                    epsilon=provenance.get("epsilon"), delta=provenance.get("delta"), hyperparameters_json=json.dumps(dict(hyperparameters)),
                    provenance_json=json.dumps(provenance, default=str), directory=directory, created_by=user, created_at=now(),
                )

            return SavedGenerator.of(self._register(GeneratorRecord, "generators", name, folder, row), self.home)

    def saved_generator(self, reference: Reference) -> SavedGenerator:
        return SavedGenerator.of(self._find(GeneratorRecord, reference, "saved generator"), self.home)

    def saved_generators(self) -> list[SavedGenerator]:
        with Session(self.engine) as session:
            rows = session.scalars(select(GeneratorRecord).order_by(GeneratorRecord.name, GeneratorRecord.version)).all()
            return [SavedGenerator.of(row, self.home) for row in rows]

    def load_generator(self, reference: Reference) -> tuple[SavedGenerator, FittedGenerator]:
        """The saved generator re-loaded by its plugin (sampling it costs no privacy budget)."""
        saved = self.saved_generator(reference)
        try:
            return saved, generator(saved.generator).load(saved.directory)
        except GeneratorError as exc:
            raise WorkspaceError(f"saved generator {saved.name}:{saved.version}: {exc}") from exc

    # -- datasets (F-IMSD-12) --------------------------------------------------------------

    def register_dataset(
        self, name: str, source: SavedGenerator, staged: Path, *, rows: int, conditions: str, seed: int | None, user: str
    ) -> DatasetVersion:
        """Register the CSV + schema written into the staging folder `staged` as the next version
        of `name`, with what produced it."""
        check_name(name, "dataset")
        csv_sha, schema_sha = sha256_of(staged / CSV_FILE), sha256_of(staged / SCHEMA_FILE)

        def row(version: int, directory: str) -> DatasetRecord:
            return DatasetRecord(
                name=name, version=version, generator_id=source.id, generator=source.generator, hyperparameters_json=json.dumps(source.hyperparameters),
                epsilon=source.epsilon, delta=source.delta, study=source.study, hubs_json=json.dumps(list(source.hubs)), conditions=conditions,
                rows=rows, seed=seed, csv_path=f"{directory}/{CSV_FILE}", csv_sha256=csv_sha, schema_path=f"{directory}/{SCHEMA_FILE}",
                schema_sha256=schema_sha, created_by=user, created_at=now(),
            )

        return DatasetVersion.of(self._register(DatasetRecord, "datasets", name, staged, row), self.home)

    def dataset(self, reference: Reference) -> DatasetVersion:
        return DatasetVersion.of(self._find(DatasetRecord, reference, "dataset"), self.home)

    def datasets(self) -> list[DatasetVersion]:
        with Session(self.engine) as session:
            rows = session.scalars(select(DatasetRecord).order_by(DatasetRecord.name, DatasetRecord.version)).all()
            return [DatasetVersion.of(row, self.home) for row in rows]

    def attach_evaluation(self, dataset: DatasetVersion, evaluation: Mapping[str, Any], report_html: str) -> DatasetVersion:
        """Store the evaluation JSON and write the HTML report next to the dataset's CSV (the
        report file is complete before its row points at it)."""
        report = dataset.csv.parent / REPORT_FILE
        partial = report.with_suffix(".html.partial")
        partial.write_text(report_html, encoding="utf-8")
        partial.replace(report)
        with Session(self.engine) as session, session.begin():
            row = session.get_one(DatasetRecord, dataset.id)
            row.evaluation_json = json.dumps(dict(evaluation))
            row.report_path = report.relative_to(self.home).as_posix()
            row.report_sha256 = sha256_of(report)
            session.flush()
            return DatasetVersion.of(row, self.home)

    # -- drafts (F-IMSD-2/10) --------------------------------------------------------------

    def save_draft(self, user: str, plugin: str, hyperparameters: Mapping[str, Any]) -> dict[str, Any]:
        """Save (merging into the user's existing draft) hyperparameters of a known generator."""
        defaults = generator(plugin).default_hyperparameters()
        unknown = sorted(set(hyperparameters) - set(defaults))
        if unknown:
            raise WorkspaceError(f"{plugin}: unknown hyperparameter(s) {unknown}; known: {sorted(defaults)}")
        merged = (self.draft(user, plugin) or {}) | dict(hyperparameters)
        with Session(self.engine) as session, session.begin():
            row = session.get(DraftRecord, (user, plugin)) or DraftRecord(user=user, generator=plugin)
            row.hyperparameters_json, row.updated_at = json.dumps(merged), now()
            session.add(row)
        return merged

    def draft(self, user: str, plugin: str) -> dict[str, Any] | None:
        with Session(self.engine) as session:
            row = session.get(DraftRecord, (user, plugin))
            return None if row is None else json.loads(row.hyperparameters_json)

    def reset_draft(self, user: str, plugin: str) -> dict[str, Any]:
        """Forget the user's draft; returns the generator's defaults (what applies now)."""
        with Session(self.engine) as session, session.begin():
            row = session.get(DraftRecord, (user, plugin))
            if row is not None:
                session.delete(row)
        return generator(plugin).default_hyperparameters()

    def hyperparameters(self, user: str, plugin: str, overrides: Mapping[str, Any], *, from_draft: bool) -> dict[str, Any]:
        """Defaults, then the user's draft (when asked for; refused if there is none), then `overrides`."""
        values = generator(plugin).default_hyperparameters()
        if from_draft:
            draft = self.draft(user, plugin)
            if draft is None:
                raise WorkspaceError(f"{user} has no saved draft for generator {plugin!r}: save one with `flute synth drafts save`")
            values |= draft
        return values | dict(overrides)

    # -- usage metering (NF-IMSD-7) ----------------------------------------------------------

    def record_usage(self, user: str, kind: str, reference: str, *, rows: int = 0, cpu_seconds: float = 0.0) -> None:
        with Session(self.engine) as session, session.begin():
            session.add(UsageRecord(user=user, kind=kind, rows=rows, cpu_seconds=cpu_seconds, reference=reference, at=now()))

    def usage(self) -> list[Usage]:
        with Session(self.engine) as session:
            rows = session.execute(select(UsageRecord.user, UsageRecord.kind, func.count(), func.sum(UsageRecord.rows), func.sum(UsageRecord.cpu_seconds)).group_by(UsageRecord.user, UsageRecord.kind)).all()
        totals: dict[str, dict[str, float]] = {}
        for user, kind, count, rows_sum, cpu in rows:
            entry = totals.setdefault(user, {"train": 0, "sample": 0, "evaluate": 0, "rows": 0, "cpu": 0.0})
            entry[kind] = count
            entry["rows"] += rows_sum or 0
            entry["cpu"] += cpu or 0.0
        return [Usage(user, int(t["train"]), int(t["rows"]), int(t["evaluate"]), float(t["cpu"])) for user, t in sorted(totals.items())]

    # -- versioning ---------------------------------------------------------------------------

    def _register(self, model: type[Versioned], kind: str, name: str, staged: Path, row: Callable[[int, str], Versioned]) -> Versioned:
        for attempt in range(REGISTER_ATTEMPTS):
            try:
                with Session(self.engine, expire_on_commit=False) as session:
                    version = (session.scalar(select(func.max(model.version)).where(model.name == name)) or 0) + 1
                    directory = f"{kind}/{name}/v{version}"
                    record = row(version, directory)
                    session.add(record)
                    session.flush()  # takes the (name, version) slot before any file moves
                    final = self.home / directory
                    if final.exists():
                        shutil.rmtree(final)  # left by a crash before its row committed: never registered
                    final.parent.mkdir(parents=True, exist_ok=True)
                    staged.rename(final)
                    try:
                        session.commit()
                    except BaseException:
                        final.rename(staged)  # the row did not commit: the files go back to staging
                        raise
                return record
            except (IntegrityError, OperationalError):
                if attempt == REGISTER_ATTEMPTS - 1:
                    raise
                time.sleep(0.05 * (attempt + 1))  # another writer took this version; take the next
        raise AssertionError("unreachable")

    def _find(self, model: type[Versioned], reference: Reference, what: str) -> Versioned:
        with Session(self.engine) as session:
            query = select(model).where(model.name == reference.name)
            query = query.where(model.version == reference.version) if reference.version is not None else query.order_by(model.version.desc())
            found = session.scalars(query.limit(1)).first()
            if found is None:
                known = sorted(set(session.scalars(select(model.name)).all()))
                raise WorkspaceError(f"no {what} {str(reference)!r} in the workspace {self.home}; known: {', '.join(known) or 'none'}")
            return found

