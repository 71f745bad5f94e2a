"""Hub homes holding simulated pilot sites imported as FHIR: the setting many end-to-end tests
need. One function, so every area builds them the same way (each test module still gets its
own homes, so budgets, grants and withdrawals set by one module never leak into another)."""

from __future__ import annotations

from pathlib import Path

from flute.cohort.simulate import simulate_cohort
from flute.hub.node import init_hub, open_hub


def simulated_hub_homes(root: Path, *, seed: int, scale: float = 0.05) -> list[Path]:
    """Simulate the three pilot sites under `root/fhir` (Bulk NDJSON) and import each into its own
    new hub home under `root/hubs/<site>`; returns the homes in site order."""
    manifest = simulate_cohort(root / "fhir", seed=seed, fmt="ndjson", scale=scale)
    homes = []
    for site in manifest.sites:
        home = root / "hubs" / site.slug
        init_hub(home, site.slug)
        with open_hub(home) as hub:
            hub.import_paths(sorted((root / "fhir" / site.directory).glob("*.ndjson")))
        homes.append(home)
    return homes
