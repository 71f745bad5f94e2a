"""Privacy-enhancing technologies as pure functions (no I/O, no global state): secure
aggregation, differential privacy, homomorphic encryption. Heavy libraries are imported by the
modules that need them, not here."""
