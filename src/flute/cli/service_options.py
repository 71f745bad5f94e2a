"""Options shared by the commands that run an HTTP service (`flute coordinator api`, `flute hub api`)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from flute.governance.policy import SecurityPolicy
    from flute.governance.service import TlsFiles

HostOption = Annotated[str, typer.Option("--host", help="Address to bind; anything but loopback needs --tls-cert/--tls-key.")]
TlsCertOption = Annotated[Path | None, typer.Option("--tls-cert", help="Server certificate (PEM), e.g. coordinator.pem from `flute pki init`.")]
TlsKeyOption = Annotated[Path | None, typer.Option("--tls-key", help="Server private key (PEM).")]
IdleOption = Annotated[int, typer.Option("--idle-timeout", min=1, help="Minutes of inactivity after which a session ends (F-SRS-3).")]


def tls_files(cert: Path | None, key: Path | None) -> TlsFiles | None:
    from flute.governance.service import TlsFiles

    if (cert is None) != (key is None):
        typer.echo("error: give both --tls-cert and --tls-key, or neither", err=True)
        raise typer.Exit(2)
    return TlsFiles(cert, key) if cert and key else None


def security_policy(idle_minutes: int) -> SecurityPolicy:
    from flute.governance.policy import SecurityPolicy

    return SecurityPolicy(idle_timeout=timedelta(minutes=idle_minutes))
