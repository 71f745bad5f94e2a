"""Governance of a FLUTE node: identities, roles and their permissions (RBAC), authentication
(passwords, TOTP, tokens, sessions), the hash-chained audit log and the skeleton of the HTTP
services every other API plugs into (URS-3, URS-10, F-SRS-1/2/3/8, F-PIL-12/20/21, F-HUF-21).

Imported by the services (coordinator, hub) and the CLI, never by fhir/cohort/privacy/learn.
"""
