"""`flute hub`: create a hospital's data hub, import FHIR into it, inspect it, withdraw patients.

Thin: parses arguments, calls `flute.hub`, prints. Every command takes --home (default
$FLUTE_HUB_HOME, else ./flute-hub).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from flute.cli import budget_cmd
from flute.cli import hub_api_cmd, hub_identity_cmd, hub_serve_cmd

app = typer.Typer(help="A hospital's data hub: store, FHIR import, quarantine, withdrawal.", no_args_is_help=True)
app.add_typer(budget_cmd.app, name="budget")
app.command("serve")(hub_serve_cmd.serve)
app.command("api")(hub_api_cmd.api)
app.command("identity")(hub_identity_cmd.identity)

HomeOption = Annotated[
    Path | None, typer.Option("--home", help="Hub home directory (default: $FLUTE_HUB_HOME, else ./flute-hub).")
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


@contextmanager
def _clear_errors() -> Iterator[None]:
    """Expected failures (missing hub, schema behind, bad input paths, a FHIR server refusing)
    as one clear line, exit 2. A failed import's batch stays recorded as failed."""
    from flute.fhir.rest import FhirServerError
    from flute.hub.home import HubHomeError
    from flute.hub.store import StoreError

    try:
        yield
    except (HubHomeError, StoreError, FhirServerError, FileNotFoundError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc


def _print_json(payload: Any) -> None:
    typer.echo(json.dumps(payload, indent=2, default=str))


@app.command("init")
def init(
    name: Annotated[str, typer.Option("--name", help="The hub's name, e.g. hospital-a.")],
    db: Annotated[str | None, typer.Option("--db", help="Database URL (default: SQLite in the home); postgresql+psycopg://USER@HOST:PORT/DB")] = None,
    home: HomeOption = None,
) -> None:
    """Create a hub: config, a private pseudonym key (0600, outside the database) and the store."""
    from flute.hub.home import resolve_home
    from flute.hub.node import init_hub

    directory = resolve_home(home)
    with _clear_errors():
        config = init_hub(directory, name, db)
    typer.echo(f"hub {config.name!r} created in {directory} (database: {config.database_url(directory)})")


@app.command("upgrade")
def upgrade(home: HomeOption = None) -> None:
    """Apply pending schema migrations to the hub's database."""
    from flute.hub.home import resolve_home
    from flute.hub.node import upgrade_hub

    with _clear_errors():
        upgrade_hub(resolve_home(home))
    typer.echo("hub database schema is up to date")


@app.command("import")
def import_(
    paths: Annotated[list[Path] | None, typer.Argument(help="FHIR Bundle (.json) or Bulk NDJSON (.ndjson) files or directories.")] = None,
    from_fhir: Annotated[str | None, typer.Option("--from-fhir", help="Instead of files: the base URL of the hospital's FHIR server.")] = None,
    fhir_header: Annotated[
        list[str] | None, typer.Option("--fhir-header", help="HTTP header for --from-fhir, 'Name: value' (repeatable), e.g. 'Authorization: Bearer TOKEN'.")
    ] = None,
    table: Annotated[Path | None, typer.Option("--table", help="Instead of FHIR: a CSV or Parquet extract, read through --mapping.")] = None,
    mapping: Annotated[Path | None, typer.Option("--mapping", help="The --table's column mapping (.toml or .json; see docs/tabular-import.md).")] = None,
    home: HomeOption = None,
    chunk_size: Annotated[int, typer.Option("--chunk-size", min=1, help="Entries committed per transaction.")] = 2000,
    as_json: JsonOption = False,
) -> None:
    """Validate and import FHIR (or a mapped table); rejected entries go to the quarantine with their reasons."""
    from flute.hub.home import resolve_home
    from flute.hub.node import open_hub

    if sum((bool(paths), bool(from_fhir), table is not None)) != 1:
        typer.echo("error: give one of PATH..., --from-fhir URL or --table PATH (exactly one source per import)", err=True)
        raise typer.Exit(2)
    if (table is None) != (mapping is None):
        typer.echo("error: --table and --mapping go together", err=True)
        raise typer.Exit(2)
    with _clear_errors(), open_hub(resolve_home(home)) as hub:
        if from_fhir:
            report = hub.import_from_server(from_fhir, headers=_headers(fhir_header or []), chunk_entries=chunk_size)
        elif table is not None and mapping is not None:
            from flute.cohort.tabular import load_mapping

            report = hub.import_table(table, load_mapping(mapping), chunk_entries=chunk_size)
        else:
            report = hub.import_paths(paths or [], chunk_entries=chunk_size)
    if as_json:
        _print_json(report.to_json())
        return
    typer.echo(
        f"batch {report.batch_id} {report.status.value}: read {report.read}, stored {report.stored}, "
        f"unchanged {report.unchanged}, quarantined {report.quarantined}; study rows derived {report.patients_derived}"
    )
    _print_counts("quarantine reasons by rule", report.quarantined_by_rule)
    _print_counts("derivation findings by rule", report.derivation_issues_by_rule)


def _headers(lines: list[str]) -> dict[str, str]:
    """'Name: value' lines as a header mapping (ValueError names the malformed one)."""
    headers = {}
    for line in lines:
        name, separator, value = line.partition(":")
        if not separator or not name.strip():
            raise ValueError(f"--fhir-header {line!r} is not 'Name: value' (e.g. 'Authorization: Bearer TOKEN')")
        headers[name.strip()] = value.strip()
    return headers


def _print_counts(title: str, counts: dict[str, int]) -> None:
    if counts:
        typer.echo(f"{title}:")
        for rule, count in sorted(counts.items()):
            typer.echo(f"  {rule}: {count}")


@app.command("status")
def status(home: HomeOption = None, as_json: JsonOption = False) -> None:
    """Patients, inclusion, labels, csPCa prevalence, quarantine by rule, import batches."""
    from flute.hub.home import resolve_home
    from flute.hub.node import open_hub
    from flute.hub.summary import summarize

    with _clear_errors(), open_hub(resolve_home(home)) as hub:
        summary = summarize(hub.store)
        name = hub.config.name
    if as_json:
        _print_json({"hub": name, **summary.to_json()})
        return
    prevalence = "n/a" if summary.cspca_prevalence is None else f"{summary.cspca_prevalence:.1%}"
    typer.echo(f"hub {name}: {summary.patients} patients ({summary.withdrawn} withdrawn), {summary.included} included, "
               f"{summary.labelled} labelled, csPCa prevalence {prevalence}")
    typer.echo(f"current resources {summary.current_resources}, quarantined entries {summary.quarantined}")
    _print_counts("quarantine by rule", summary.quarantined_by_rule)
    for batch in summary.batches:
        typer.echo(f"batch {batch.id} {batch.status}: read {batch.read}, stored {batch.stored}, unchanged {batch.unchanged}, "
                   f"quarantined {batch.quarantined} - {batch.source}" + (f" ({batch.note})" if batch.note else ""))


@app.command("withdraw")
def withdraw(
    pseudonym: Annotated[str, typer.Argument(help="The patient's pseudonym in this hub.")],
    reason: Annotated[str, typer.Option("--reason", help="Why (recorded in the withdrawal register).")] = "patient request",
    home: HomeOption = None,
) -> None:
    """Withdraw a patient from every future use; later imports of them are quarantined (NF-PIL-11)."""
    from flute.hub.home import resolve_home
    from flute.hub.node import open_hub

    with _clear_errors(), open_hub(resolve_home(home)) as hub:
        result = hub.store.withdraw(pseudonym, reason)
    typer.echo(f"withdrew {result.pseudonym} at {result.withdrawn_at.isoformat()} ({result.resources_withdrawn} resources excluded)")


@app.command("quarantine")
def quarantine(
    home: HomeOption = None,
    batch: Annotated[int | None, typer.Option("--batch", help="Only this import batch.")] = None,
    as_json: JsonOption = False,
) -> None:
    """List rejected entries with where they came from and why they were rejected."""
    from flute.hub.home import resolve_home
    from flute.hub.node import open_hub
    from flute.hub.summary import quarantined_entries

    with _clear_errors(), open_hub(resolve_home(home)) as hub:
        entries = quarantined_entries(hub.store, batch)
    if as_json:
        _print_json([entry.to_json() for entry in entries])
        return
    for entry in entries:
        what = f"{entry.resource_type or '?'}/{entry.resource_id or '?'}"
        typer.echo(f"[{entry.id}] batch {entry.batch_id} {what} at {entry.location}")
        for reason in entry.reasons:
            typer.echo(f"    {reason['rule']}: {reason['message']}")
    typer.echo(f"{len(entries)} quarantined entries")
