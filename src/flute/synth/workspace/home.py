"""Where the synthetic-data workspace lives: a home directory holding its database (SQLite
`workspace.sqlite3` by default, or any SQLAlchemy URL in `workspace.toml`) and its artefacts.

Layout:
    workspace.toml            optional: [workspace] db_url = "...", plugins = ["module", ...]
    workspace.sqlite3         the store (saved generators, dataset versions, drafts, jobs, usage)
    generators/NAME/vN/       a saved generator, as written by FittedGenerator.save
    datasets/NAME/vN/         data.csv, data.schema.json, report.html
    staging/ID/               files being written; moved into place only as their row commits

Resolution: `--workspace DIR`, else $FLUTE_SYNTH_WORKSPACE, else ./flute-synth-workspace. On a
coordinator, point it at a folder of the coordinator home (e.g. COORDINATOR_HOME/synth): the
workspace holds only synthetic artefacts and metadata, never a real row. `plugins` lists modules
whose import registers extra generators (F-IMSD-17), so job processes started from this
workspace know them too.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Final

HOME_ENV_VAR: Final[str] = "FLUTE_SYNTH_WORKSPACE"
DEFAULT_HOME: Final[Path] = Path("flute-synth-workspace")
CONFIG_FILE: Final[str] = "workspace.toml"
SQLITE_FILE: Final[str] = "workspace.sqlite3"
STAGING_DIR: Final[str] = "staging"


class WorkspaceError(RuntimeError):
    """The workspace cannot do what was asked; the message says why and how to fix it."""


@dataclass(frozen=True)
class WorkspaceConfig:
    db_url: str
    plugins: tuple[str, ...]


def resolve_home(home: Path | None) -> Path:
    if home is not None:
        return home
    env = os.environ.get(HOME_ENV_VAR)
    return Path(env) if env else DEFAULT_HOME


def read_config(home: Path) -> WorkspaceConfig:
    default_url = f"sqlite:///{(home / SQLITE_FILE).resolve()}"
    path = home / CONFIG_FILE
    if not path.is_file():
        return WorkspaceConfig(default_url, ())
    try:
        table = tomllib.loads(path.read_text(encoding="utf-8")).get("workspace", {})
    except tomllib.TOMLDecodeError as exc:
        raise WorkspaceError(f"{path} is not valid TOML ({exc})") from exc
    plugins = table.get("plugins", [])
    if not isinstance(plugins, list) or not all(isinstance(p, str) for p in plugins):
        raise WorkspaceError(f"{path}: [workspace] plugins must be a list of module names, got {plugins!r}")
    return WorkspaceConfig(str(table.get("db_url") or default_url), tuple(plugins))


USER_ENV_VAR: Final[str] = "FLUTE_USER"


def resolve_user(user: str | None) -> str:
    """Who is metered and owns drafts: `--user`, else $FLUTE_USER, else the login name."""
    if user:
        return user
    import getpass

    return os.environ.get(USER_ENV_VAR) or getpass.getuser()
