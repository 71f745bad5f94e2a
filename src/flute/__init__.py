"""FLUTE: privacy-enforcing federated healthcare AI across hospital data hubs.

The package is organised along the data path (see docs/architecture.md): FHIR in
(`flute.fhir`) -> the hub's store (`flute.hub`) -> federated engine (`flute.engine`)
with privacy-enhancing technologies (`flute.privacy`) and learning algorithms
(`flute.learn`) -> federated evaluation (`flute.evaluate`) -> deployment (`flute.deploy`).

Importing `flute` is deliberately cheap: heavy libraries are imported where used.
"""

__version__ = "0.1.0"
