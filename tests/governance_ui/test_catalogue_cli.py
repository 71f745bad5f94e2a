"""`flute hub api --coordinator URL` needs the hub's coordinator token from the environment and
says so, instead of serving a UI that can never receive access requests."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from flute.cli.main import app
from flute.governance.link import TOKEN_ENV_VAR
from flute.hub.node import init_hub


def test_hub_api_refuses_a_coordinator_without_token(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    init_hub(tmp_path / "hub", "hospital-a")
    monkeypatch.delenv(TOKEN_ENV_VAR, raising=False)
    result = CliRunner().invoke(app, ["hub", "api", "--home", str(tmp_path / "hub"), "--coordinator", "https://coordinator.example"])
    assert result.exit_code == 2
    assert f"set {TOKEN_ENV_VAR}" in result.output and "https://coordinator.example/auth/tokens" in result.output
    monkeypatch.setenv(TOKEN_ENV_VAR, "flute_x")
    result = CliRunner().invoke(
        app, ["hub", "api", "--home", str(tmp_path / "hub"), "--coordinator", "https://c.example", "--coordinator-ca", str(tmp_path / "nope.pem")]
    )
    assert result.exit_code == 2 and "nope.pem not found" in result.output
