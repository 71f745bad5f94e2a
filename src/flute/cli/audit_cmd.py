"""`flute audit`: verify a node's hash-chained audit log and export it for auditors (F-SRS-8, URS-10).

Thin: opens the node's database, calls `flute.governance.audit`, prints. `verify` exits 1 when
the log was tampered with, naming each broken entry.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from sqlalchemy import Engine

app = typer.Typer(help="The audit log of a hub or the coordinator: verify, export.", no_args_is_help=True)

HubHomeOption = Annotated[Path | None, typer.Option("--home", help="A hub home directory.")]
CoordinatorHomeOption = Annotated[Path | None, typer.Option("--coordinator-home", help="The coordinator home directory.")]


@contextmanager
def _node(home: Path | None, coordinator_home: Path | None) -> Iterator[tuple[str, Engine, bytes]]:
    """The chosen node's label, database engine and audit key; clear errors exit 2."""
    from flute.coordinator.home import CoordinatorHomeError
    from flute.coordinator.store import open_coordinator_engine
    from flute.governance.keys import NodeKeyError, load_node_keys
    from flute.hub.home import HubHomeError, connection_url, load_config
    from flute.hub.store import HubStore, StoreError

    if (home is None) == (coordinator_home is None):
        typer.echo("error: give exactly one of --home HUB_DIR or --coordinator-home DIR", err=True)
        raise typer.Exit(2)
    try:
        if home is not None:
            config = load_config(home)
            label, engine = f"hub {config.name}", HubStore.open(connection_url(home, config)).engine
            key = load_node_keys(home).audit_key
        else:
            assert coordinator_home is not None
            label, engine = "coordinator", open_coordinator_engine(coordinator_home)
            key = load_node_keys(coordinator_home).audit_key
    except (HubHomeError, StoreError, CoordinatorHomeError, NodeKeyError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    try:
        yield label, engine, key
    finally:
        engine.dispose()


@app.command("verify")
def verify(
    home: HubHomeOption = None,
    coordinator_home: CoordinatorHomeOption = None,
    anchor: Annotated[str | None, typer.Option("--anchor", help="SEQ:HASH printed by an earlier `flute audit export`: the log must still hold it.")] = None,
) -> None:
    """Check every entry's hash, link and HMAC and the chain head; exit 1 on tampering."""
    from flute.governance.audit import ChainHead, verify as verify_log

    try:
        expected = ChainHead.parse(anchor) if anchor else None
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    with _node(home, coordinator_home) as (label, engine, key), engine.connect() as connection:
        result = verify_log(connection, key=key, anchor=expected)
    if result.intact:
        typer.echo(f"{label}: audit log intact - {result.entries} entries, head {result.head.anchor()} (hash chain + HMAC)")
        return
    typer.echo(f"{label}: audit log TAMPERED - {len(result.problems)} problem(s) in {result.entries} entries:", err=True)
    for problem in result.problems:
        typer.echo(f"  {problem}", err=True)
    raise typer.Exit(1)


@app.command("export")
def export(
    out: Annotated[Path, typer.Option("--out", help="JSON-lines file to write (entries, then a final {\"head\": ...} line).")],
    home: HubHomeOption = None,
    coordinator_home: CoordinatorHomeOption = None,
) -> None:
    """Write every entry as JSON lines plus the chain head; print the head as an anchor."""
    from flute.governance.audit import chain_head, iter_entries

    with _node(home, coordinator_home) as (label, engine, _key), engine.connect() as connection, out.open("w", encoding="utf-8") as handle:
        count = 0
        for entry in iter_entries(connection):
            handle.write(json.dumps(entry.to_json(), sort_keys=True, ensure_ascii=False) + "\n")
            count += 1
        head = chain_head(connection)
        handle.write(json.dumps({"head": {"seq": head.seq, "hash": head.hash}}) + "\n")
    typer.echo(f"{label}: exported {count} entries to {out}; chain head (keep it as an anchor): {head.anchor()}")
