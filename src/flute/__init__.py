"""FLUTE: privacy-enforcing federated healthcare AI across hospital data hubs.

The package is organised along the data path (see docs/architecture.md): FHIR in
(`flute.fhir`) -> the hub's store (`flute.hub`) -> federated engine (`flute.engine`)
with privacy-enhancing technologies (`flute.privacy`) and learning algorithms
(`flute.learn`) -> federated evaluation (`flute.evaluate`) -> deployment (`flute.deploy`).

Importing `flute` is deliberately cheap: heavy libraries are imported where used.
"""

__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    """`flute.connect(url, token)`, the researcher SDK's entry point (F-HUF-1), imported on first
    use so that `import flute` stays cheap."""
    if name == "connect":
        from flute.sdk import connect

        return connect
    raise AttributeError(f"module 'flute' has no attribute {name!r}")
