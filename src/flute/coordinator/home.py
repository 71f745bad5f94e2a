"""The coordinator's home directory: its governance database (SQLite in the home by default,
or PostgreSQL by URL) and its governance keys (`governance-keys.toml`, 0600).

Layout: coordinator.toml ([coordinator] db_url, optional), coordinator.sqlite3,
governance-keys.toml. It may be the same directory as `flute coordinator serve --state`.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Final

import tomli_w

HOME_ENV_VAR: Final[str] = "FLUTE_COORDINATOR_HOME"
DEFAULT_HOME: Final[Path] = Path("flute-coordinator")
CONFIG_FILE: Final[str] = "coordinator.toml"
SQLITE_FILE: Final[str] = "coordinator.sqlite3"
#: The organisation of the platform operator (where the first platform admin lives).
PLATFORM_ORG: Final[str] = "platform"


class CoordinatorHomeError(RuntimeError):
    """The coordinator home is missing or damaged; the message says how to fix it."""


def resolve_home(home: Path | None) -> Path:
    """`--coordinator-home DIR` if given, else $FLUTE_COORDINATOR_HOME, else ./flute-coordinator."""
    if home is not None:
        return home
    env = os.environ.get(HOME_ENV_VAR)
    return Path(env) if env else DEFAULT_HOME


def database_url(home: Path) -> str:
    path = home / CONFIG_FILE
    if not path.is_file():
        return f"sqlite:///{(home / SQLITE_FILE).resolve()}"
    try:
        url = tomllib.loads(path.read_text(encoding="utf-8")).get("coordinator", {}).get("db_url")
    except tomllib.TOMLDecodeError as exc:
        raise CoordinatorHomeError(f"{path} is not valid TOML ({exc})") from exc
    return str(url) if url else f"sqlite:///{(home / SQLITE_FILE).resolve()}"


def write_config(home: Path, db_url: str | None) -> None:
    home.mkdir(parents=True, exist_ok=True)
    table = {"db_url": db_url} if db_url else {}
    (home / CONFIG_FILE).write_text(tomli_w.dumps({"coordinator": table}), encoding="utf-8")
