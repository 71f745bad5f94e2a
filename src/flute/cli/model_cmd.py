"""`flute model`: publisher keys, packaging, verification and inspection of model artifacts.

Thin: parses arguments, calls `flute.deploy`, prints. `verify` exits 1 for any artifact a site
must not load (unsigned, untrusted key, bad signature, tampered, invalid or unknown format) and
says why (F-PIL-23).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from flute.deploy.artifact import ScoringModel

app = typer.Typer(help="Signed model artifacts: keys, packaging, verification, FHIR Library export.", no_args_is_help=True)

TRUST_ENV_VAR = "FLUTE_TRUSTED_PUBLISHERS"
DEFAULT_TRUST = Path("trusted-publishers")
TrustOption = Annotated[
    Path,
    typer.Option("--trust", envvar=TRUST_ENV_VAR, help="Trusted publisher key: a .pub file or a directory of them."),
]
ArtifactArgument = Annotated[Path, typer.Argument(help="The model artifact directory.")]


@app.command("keygen")
def keygen(
    out: Annotated[Path, typer.Option("--out", help="Directory for NAME.key (0600) and NAME.pub.")],
    name: Annotated[str, typer.Option("--name", help="File name stem of the key pair.")] = "publisher",
) -> None:
    """Create an Ed25519 publisher key pair; give NAME.pub to every site that should trust it."""
    from flute.deploy.errors import SigningKeyError
    from flute.deploy.keys import generate_key_pair

    try:
        files = generate_key_pair(out, name)
    except SigningKeyError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    typer.echo(f"private key: {files.private_key} (mode 0600; keep it with the publisher)")
    typer.echo(f"public key:  {files.public_key} (copy into each site's trust directory)")
    typer.echo(f"key id:      {files.key_id}")


@app.command("package")
def package(
    result: Annotated[Path, typer.Option("--result", help="result.flute written by `flute study run --out`.")],
    key: Annotated[Path, typer.Option("--key", help="The publisher's private key (from `flute model keygen`).")],
    out: Annotated[Path, typer.Option("--out", help="New (or empty) directory for the artifact.")],
    version: Annotated[str, typer.Option("--version", help="Semantic version of this model.")] = "1.0.0",
    threshold: Annotated[float, typer.Option("--threshold", min=0.0, max=1.0, help="Decision threshold: biopsy at or above.")] = 0.15,
    allow_imputation: Annotated[bool, typer.Option("--allow-imputation", help="Let sites score patients with missing variables (training means).")] = False,
) -> None:
    """Sign and write the final model of a study result as a deployable artifact (F-PIL-24)."""
    from flute.deploy.errors import ArtifactError
    from flute.deploy.keys import load_signing_key
    from flute.deploy.study import package_study_result
    from flute.engine.flower import record_from_bytes
    from flute.engine.records import RecordFormatError
    from flute.engine.result import StudyResult

    try:
        study = StudyResult.from_record(record_from_bytes(result.read_bytes()))
        path = package_study_result(
            study, study.spec, out, load_signing_key(key), version=version, threshold=threshold, allow_imputation=allow_imputation
        )
    except (OSError, ArtifactError, RecordFormatError, LookupError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    typer.echo(f"artifact: {path} (model {study.spec.study_id} {version})")


@app.command("verify")
def verify(artifact: ArtifactArgument, trust: TrustOption = DEFAULT_TRUST) -> None:
    """Check signature, schema, file hashes and tensors; exit 1 with the reason if refused."""
    model = verified_model(artifact, trust)
    identity = model.manifest.model
    typer.echo(f"OK: {identity.model_id} {identity.version} ({identity.model_type}), signed by a trusted publisher, all files intact")


@app.command("show")
def show(artifact: ArtifactArgument, trust: TrustOption = DEFAULT_TRUST) -> None:
    """Print the verified manifest (JSON)."""
    from flute.deploy.manifest import manifest_document

    typer.echo(json.dumps(manifest_document(verified_model(artifact, trust).manifest), indent=2))


@app.command("library")
def library(artifact: ArtifactArgument, trust: TrustOption = DEFAULT_TRUST) -> None:
    """Print the model as a FHIR R4 Library with CQL (logistic models; F-STD-10)."""
    from flute.deploy.cql import NotExpressibleInCql, cql_library

    try:
        typer.echo(json.dumps(cql_library(verified_model(artifact, trust)), indent=2))
    except NotExpressibleInCql as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc


def verified_model(artifact: Path, trust: Path) -> ScoringModel:
    """The verified model, or exit 1 with the refusal's reason (shared with `flute score`)."""
    from flute.deploy.artifact import load_verified
    from flute.deploy.errors import ArtifactError
    from flute.deploy.keys import load_trusted_keys

    try:
        return load_verified(artifact, load_trusted_keys(trust))
    except ArtifactError as exc:
        typer.echo(f"REFUSED ({type(exc).__name__}): {exc}", err=True)
        raise typer.Exit(1) from exc
