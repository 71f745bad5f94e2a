"""The governance CLI and live services: `flute admin init` prints the one-time secret once and
refuses a second init; `flute audit verify` exits 1 on tampering and names the entry; `flute
audit export` writes entries + head; `flute coordinator api` and `flute hub api` run for real
under uvicorn on loopback (HTTPS with certificates from flute pki), and a login reaches a
protected route (URS-3, F-SRS-8, F-HUF-21)."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text
from typer.testing import CliRunner

from flute.cli.main import app
from flute.engine.pki import init_pki
from flute.governance import totp
from flute.governance.timeutil import utc_now

runner = CliRunner()
SECRET_LINES = re.compile(r"password:\s+(\S+)\n\s+TOTP secret:\s+(\S+)\n\s+TOTP URI:\s+(otpauth://\S+)")


def _init_coordinator(home: Path) -> tuple[str, str]:
    result = runner.invoke(app, ["admin", "init", "--coordinator-home", str(home), "--username", "root"])
    assert result.exit_code == 0, result.output
    found = SECRET_LINES.search(result.output)
    assert found is not None, result.output
    return found.group(1), found.group(2)


def test_admin_init_prints_the_secret_once_and_refuses_a_second_init(tmp_path: Path) -> None:
    home = tmp_path / "coordinator"
    first = runner.invoke(app, ["admin", "init", "--coordinator-home", str(home), "--username", "root"])
    assert first.exit_code == 0 and first.output.count("ONE-TIME SECRET") == 1
    found = SECRET_LINES.search(first.output)
    assert found is not None and found.group(3).startswith("otpauth://totp/FLUTE:root?secret=")
    password, secret = found.group(1), found.group(2)
    assert len(password) >= 24
    again = runner.invoke(app, ["admin", "init", "--coordinator-home", str(home)])
    assert again.exit_code == 2 and "already has 1 account" in again.output
    assert password not in again.output and secret not in again.output
    assert (home / "governance-keys.toml").stat().st_mode & 0o777 == 0o600
    # nothing on disk holds the password in clear
    for path in home.iterdir():
        assert password.encode() not in path.read_bytes()


def test_admin_init_needs_exactly_one_home(tmp_path: Path) -> None:
    result = runner.invoke(app, ["admin", "init"])
    assert result.exit_code == 2 and "exactly one of" in result.output


def test_audit_verify_and_export_and_tampering(tmp_path: Path) -> None:
    home = tmp_path / "coordinator"
    _init_coordinator(home)
    intact = runner.invoke(app, ["audit", "verify", "--coordinator-home", str(home)])
    assert intact.exit_code == 0 and "intact - 2 entries" in intact.output
    out = tmp_path / "audit.jsonl"
    exported = runner.invoke(app, ["audit", "export", "--coordinator-home", str(home), "--out", str(out)])
    assert exported.exit_code == 0
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [line["action"] for line in lines[:-1]] == ["org.create", "user.create"]
    anchor = f"{lines[-1]['head']['seq']}:{lines[-1]['head']['hash']}"
    assert anchor in exported.output
    engine = create_engine(f"sqlite:///{home / 'coordinator.sqlite3'}")
    with engine.begin() as connection:
        connection.execute(text("UPDATE gov_audit_entry SET target = 'user:someone-else' WHERE seq = 2"))
    engine.dispose()
    tampered = runner.invoke(app, ["audit", "verify", "--coordinator-home", str(home), "--anchor", anchor])
    assert tampered.exit_code == 1
    assert "TAMPERED" in tampered.output and "entry 2: content altered" in tampered.output


def test_hub_admin_init_and_audit(tmp_path: Path) -> None:
    home = tmp_path / "hub"
    assert runner.invoke(app, ["hub", "init", "--name", "hospital-a", "--home", str(home)]).exit_code == 0
    result = runner.invoke(app, ["admin", "init", "--home", str(home), "--username", "dpo"])
    assert result.exit_code == 0 and "data_owner_admin 'dpo' in organisation 'hospital-a'" in result.output
    verified = runner.invoke(app, ["audit", "verify", "--home", str(home)])
    assert verified.exit_code == 0 and "hub hospital-a: audit log intact" in verified.output


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def _service(arguments: list[str], health_url: str, verify: str | bool) -> Iterator[subprocess.Popen[bytes]]:
    """A `flute ...` service process, ready when /health answers; stopped afterwards."""
    process = subprocess.Popen([sys.executable, "-m", "flute.cli.main", *arguments], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=os.environ.copy())
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise AssertionError(f"service exited: {process.stdout.read().decode() if process.stdout else ''}")
            try:
                if httpx.get(health_url, verify=verify, timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.3)
        yield process
    finally:
        process.terminate()
        process.wait(timeout=20)


@pytest.mark.slow
def test_coordinator_api_runs_over_https_on_loopback(tmp_path: Path) -> None:
    home = tmp_path / "coordinator"
    password, secret = _init_coordinator(home)
    pki = init_pki(tmp_path / "pki")
    port = _free_port()
    base = f"https://127.0.0.1:{port}"
    arguments = ["coordinator", "api", "--home", str(home), "--port", str(port), "--tls-cert", str(pki.server_cert), "--tls-key", str(pki.server_key)]
    with _service(arguments, f"{base}/health", str(pki.ca_cert)):
        with httpx.Client(base_url=base, verify=str(pki.ca_cert)) as client:
            assert client.get("/auth/me").status_code == 401
            refused = client.post("/auth/login", json={"username": "root", "password": password})
            assert refused.status_code == 401 and "TOTP" in refused.json()["detail"]
            login = client.post("/auth/login", json={"username": "root", "password": password, "totp": totp.current_code(secret, utc_now())})
            assert login.status_code == 200
            me = client.get("/auth/me", headers={"Authorization": f"Bearer {login.json()['access_token']}"})
            assert me.json() == {"user_id": "root", "org_id": "platform", "roles": ["platform_admin"], "auth_method": "password+totp"}
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{base}/health", verify=True, timeout=5)  # a client that does not trust the FLUTE CA refuses the server
    verified = runner.invoke(app, ["audit", "verify", "--coordinator-home", str(home)])
    assert verified.exit_code == 0 and "3 entries" in verified.output  # org, user, login


@pytest.mark.slow
def test_hub_api_runs_on_loopback_and_refuses_plain_http_elsewhere(tmp_path: Path) -> None:
    home = tmp_path / "hub"
    assert runner.invoke(app, ["hub", "init", "--name", "hospital-a", "--home", str(home)]).exit_code == 0
    found = SECRET_LINES.search(runner.invoke(app, ["admin", "init", "--home", str(home)]).output)
    assert found is not None
    port = _free_port()
    with _service(["hub", "api", "--home", str(home), "--port", str(port)], f"http://127.0.0.1:{port}/health", False):
        login = httpx.post(f"http://127.0.0.1:{port}/auth/login", json={"username": "admin", "password": found.group(1), "totp": totp.current_code(found.group(2), utc_now())})
        me = httpx.get(f"http://127.0.0.1:{port}/auth/me", headers={"Authorization": f"Bearer {login.json()['access_token']}"})
        assert me.json()["org_id"] == "hospital-a"
    exposed = runner.invoke(app, ["hub", "api", "--home", str(home), "--host", "0.0.0.0", "--port", str(port)])
    assert exposed.exit_code == 2 and "refusing plain HTTP" in exposed.output


def test_node_keys_are_created_once_privately_and_refused_when_readable(tmp_path: Path) -> None:
    from flute.governance.keys import KEYS_FILE, NodeKeyError, load_node_keys

    first = load_node_keys(tmp_path)
    assert load_node_keys(tmp_path) == first and first.token_key != first.audit_key
    assert [p.name for p in tmp_path.iterdir()] == [KEYS_FILE]
    (tmp_path / KEYS_FILE).chmod(0o644)
    with pytest.raises(NodeKeyError, match="chmod 600"):
        load_node_keys(tmp_path)
