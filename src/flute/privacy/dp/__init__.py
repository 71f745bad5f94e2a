"""Differential privacy: the cost of a release (`cost`), its accounting (`accounting`, backed by
dp-accounting) and the noise mechanisms that produce releases (`mechanisms`).

Every release states its (epsilon, delta) and the unit it protects (URS-6/7/8, NF-HUF-1); a
hub's ledger charges that cost against the study's budget BEFORE the release is computed."""
