"""Why an artifact was refused: one exception type per reason, so a site (and its tests) can tell
an unsigned artifact from a tampered one (F-PIL-23: the security check before a model runs)."""

from __future__ import annotations


class ArtifactError(ValueError):
    """An artifact that must not be loaded; the message says what, where and how to fix."""


class UnsignedArtifact(ArtifactError):
    """No signature.json: the artifact's origin cannot be established."""


class UntrustedKey(ArtifactError):
    """Signed with a key this site does not trust (or unknown key id)."""


class BadSignature(ArtifactError):
    """The signature does not verify against the manifest with the named trusted key."""


class TamperedArtifact(ArtifactError):
    """A file differs from its signed hash, is missing, or is not listed in the manifest."""


class UnknownFormat(ArtifactError):
    """Not a FLUTE model artifact, a format version this code does not read, or a model type
    with no registered model family."""


class ManifestInvalid(ArtifactError):
    """The manifest is not valid JSON or breaks the schema; `reasons` lists every problem."""

    def __init__(self, source: str, reasons: list[str]) -> None:
        self.reasons = reasons
        super().__init__(f"{source}: manifest refused:\n" + "\n".join(f"  - {reason}" for reason in reasons))


class SigningKeyError(ArtifactError):
    """A signing or trusted public key file is missing, malformed or too widely readable."""
