"""The hub home directory: configuration, the pseudonym key and the default SQLite store.

The key lives in its own file with 0600 permissions, OUTSIDE the database (F-PIL-6): a copy of
the database alone cannot be used to re-identify patients by recomputing pseudonyms.
"""

from __future__ import annotations

import fcntl
import os
import secrets
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import tomli_w

HOME_ENV_VAR = "FLUTE_HUB_HOME"
DEFAULT_HOME = Path("flute-hub")
CONFIG_FILE = "hub.toml"
SECRETS_FILE = "secrets.toml"
SQLITE_FILE = "hub.sqlite3"
LOCK_FILE = "import.lock"
KEY_BYTES = 32


class HubHomeError(RuntimeError):
    """The hub home is missing, incomplete or unsafe; the message says how to fix it."""


@dataclass(frozen=True)
class HubConfig:
    """What `flute hub init` records: the hub's name, its database URL without any password
    (None: the SQLite file in the home, so the home can be moved) and the namespace that
    qualifies bare Patient ids before pseudonymisation (so equal ids at two hospitals get
    different pseudonyms)."""

    name: str
    source_namespace: str
    db_url: str | None = None

    def database_url(self, home: Path) -> str:
        """The URL as shown to people: never with a password."""
        return self.db_url or f"sqlite:///{(home / SQLITE_FILE).resolve()}"


def resolve_home(home: Path | None) -> Path:
    """`--home DIR` if given, else $FLUTE_HUB_HOME, else ./flute-hub."""
    if home is not None:
        return home
    env = os.environ.get(HOME_ENV_VAR)
    return Path(env) if env else DEFAULT_HOME


def new_config(home: Path, name: str, db_url: str | None = None) -> HubConfig:
    """The configuration of a hub about to be created (a password in `db_url` is left out: it
    goes to the secrets file); refuses an existing hub so that a key is never silently replaced
    (which would change every pseudonym)."""
    from sqlalchemy.engine import make_url

    _refuse_existing(home, name)
    public_url = make_url(db_url)._replace(password=None).render_as_string(hide_password=False) if db_url else None
    return HubConfig(name=name, source_namespace=f"urn:flute:hub:{name}", db_url=public_url)


def _refuse_existing(home: Path, name: str) -> None:
    if not name.strip():
        raise HubHomeError("hub name must not be empty (pass --name, e.g. --name hospital-a)")
    if (home / CONFIG_FILE).exists() or (home / SECRETS_FILE).exists():
        raise HubHomeError(
            f"{home} already holds a hub ({CONFIG_FILE}/{SECRETS_FILE} exist); choose another --home "
            "or remove it deliberately - re-initialising would replace the pseudonym key"
        )


def write_home(home: Path, config: HubConfig, db_password: str | None = None) -> None:
    """Create the home: config, and the secrets file (0600) with a fresh random pseudonym key
    and the database password, if any."""
    home.mkdir(parents=True, exist_ok=True)
    private: dict[str, str] = {"pseudonym_key": secrets.token_bytes(KEY_BYTES).hex()}
    if db_password:
        private["db_password"] = db_password
    _write_secret(home / SECRETS_FILE, private)
    table: dict[str, str] = {"name": config.name, "source_namespace": config.source_namespace}
    if config.db_url:
        table["db_url"] = config.db_url
    (home / CONFIG_FILE).write_text(tomli_w.dumps({"hub": table}), encoding="utf-8")


def load_config(home: Path) -> HubConfig:
    path = home / CONFIG_FILE
    if not path.is_file():
        raise HubHomeError(f"no hub at {home} ({CONFIG_FILE} missing): run `flute hub init --name NAME --home {home}`")
    try:
        table = tomllib.loads(path.read_text(encoding="utf-8"))["hub"]
        return HubConfig(name=table["name"], source_namespace=table["source_namespace"], db_url=table.get("db_url"))
    except (tomllib.TOMLDecodeError, KeyError, TypeError) as exc:
        raise HubHomeError(f"{path} is not a valid hub config ({exc}); expected a [hub] table with name and source_namespace") from exc


def load_key(home: Path) -> bytes:
    """The hub's pseudonym key."""
    try:
        return bytes.fromhex(_load_secrets(home)["pseudonym_key"])
    except (KeyError, ValueError) as exc:
        raise HubHomeError(f"{home / SECRETS_FILE} does not hold a valid pseudonym_key ({exc})") from exc


def connection_url(home: Path, config: HubConfig) -> str:
    """The database URL to connect with: the configured one plus the password from the secrets."""
    from sqlalchemy.engine import make_url

    password = _load_secrets(home).get("db_password")
    url = config.database_url(home)
    return make_url(url).set(password=password).render_as_string(hide_password=False) if password else url


def _load_secrets(home: Path) -> dict[str, str]:
    """The secrets file; refuses one readable by group or others."""
    path = home / SECRETS_FILE
    if not path.is_file():
        raise HubHomeError(f"secrets file {path} missing: this hub cannot compute pseudonyms; restore it from backup")
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        raise HubHomeError(f"{path} has permissions {mode:o}; the key must be private: chmod 600 {path}")
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise HubHomeError(f"{path} is not valid TOML ({exc})") from exc


def _write_secret(path: Path, values: dict[str, str]) -> None:
    # Created with 0600 from the start: no window in which the key is world-readable.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(tomli_w.dumps(values))


@contextmanager
def import_lock(home: Path) -> Iterator[None]:
    """One import at a time per hub. The kernel drops the lock when the process dies (even by
    SIGKILL), so an import that holds it may treat any batch still 'running' as interrupted."""
    with open(home / LOCK_FILE, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise HubHomeError(f"another import is running on the hub at {home}; wait for it to finish") from exc
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
