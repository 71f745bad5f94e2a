"""`flute admin`: bootstrap a node's identities (the first administrator, with a one-time secret).

Thin: parses arguments, calls `flute.governance.bootstrap`, prints.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from flute.governance.bootstrap import FirstAdmin

app = typer.Typer(help="Identities of a node: the first administrator, schema upgrades.", no_args_is_help=True)


@app.command("init")
def init(
    coordinator_home: Annotated[Path | None, typer.Option("--coordinator-home", help="Coordinator home: creates its database and the first platform admin.")] = None,
    home: Annotated[Path | None, typer.Option("--home", help="Hub home (after `flute hub init`): creates the hub's first data-owner admin.")] = None,
    username: Annotated[str, typer.Option("--username", help="Login name of the first admin.")] = "admin",
    db: Annotated[str | None, typer.Option("--db", help="Coordinator database URL (default: SQLite in the home); postgresql+psycopg://USER@HOST:PORT/DB")] = None,
) -> None:
    """Create the first administrator and print its one-time secret (password + TOTP) once."""
    from flute.coordinator.home import CoordinatorHomeError
    from flute.governance.bootstrap import AlreadyInitialised
    from flute.governance.identity import IdentityError
    from flute.governance.keys import NodeKeyError
    from flute.hub.home import HubHomeError
    from flute.hub.store import StoreError

    if (coordinator_home is None) == (home is None):
        typer.echo("error: give exactly one of --coordinator-home DIR or --home HUB_DIR", err=True)
        raise typer.Exit(2)
    try:
        if coordinator_home is not None:
            admin = _init_coordinator(coordinator_home, username, db)
        else:
            assert home is not None
            admin = _init_hub(home, username)
    except (AlreadyInitialised, IdentityError, CoordinatorHomeError, HubHomeError, StoreError, NodeKeyError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    typer.echo(f"created {admin.role.value} {admin.username!r} in organisation {admin.org_id!r}")
    typer.echo("ONE-TIME SECRET - shown only now, store it in a password manager and hand it over securely:")
    typer.echo(f"  password:     {admin.password}")
    typer.echo(f"  TOTP secret:  {admin.totp.secret}")
    typer.echo(f"  TOTP URI:     {admin.totp.provisioning_uri}")


def _init_coordinator(home: Path, username: str, db: str | None) -> FirstAdmin:
    from flute.coordinator.home import CONFIG_FILE, PLATFORM_ORG, write_config
    from flute.coordinator.store import open_coordinator_engine
    from flute.governance.bootstrap import create_first_admin
    from flute.governance.rbac import Role
    from flute.governance.service import open_context

    if not (home / CONFIG_FILE).exists():
        write_config(home, db)
    engine = open_coordinator_engine(home, create=True)
    try:
        context = open_context(home, engine, organisation=None)
        return create_first_admin(context.identity, username=username, org_id=PLATFORM_ORG, org_name="Platform operator", role=Role.PLATFORM_ADMIN)
    finally:
        engine.dispose()


def _init_hub(home: Path, username: str) -> FirstAdmin:
    from flute.governance.bootstrap import create_first_admin
    from flute.governance.rbac import Role
    from flute.governance.service import open_context
    from flute.hub.node import open_hub

    with open_hub(home) as hub:
        context = open_context(home, hub.store.engine, organisation=hub.config.name)
        return create_first_admin(context.identity, username=username, org_id=hub.config.name, org_name=hub.config.name, role=Role.DATA_OWNER_ADMIN)


@app.command("upgrade")
def upgrade(coordinator_home: Annotated[Path, typer.Option("--coordinator-home", help="The coordinator home whose database to migrate.")]) -> None:
    """Apply pending schema migrations to the coordinator's database."""
    from flute.coordinator.home import CoordinatorHomeError
    from flute.coordinator.store import open_coordinator_engine

    try:
        open_coordinator_engine(coordinator_home, create=True).dispose()
    except CoordinatorHomeError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    typer.echo("coordinator database schema is up to date")
