"""Deployment of trained models to clinical validation sites (F-PIL-23, F-PIL-24, F-STD-7, F-STD-10).

A trained model leaves the federation as a signed, versioned artifact directory (`artifact`,
`manifest`, `signing`); a hub or site loads it only after `load_verified` has checked the
publisher's Ed25519 signature and every file hash. Verified models score FHIR input with the
same validator and extractor as the hubs (`scoring`), answer as FHIR RiskAssessments, are served
over HTTP (`service`) and are exported as a FHIR Library with CQL (`cql`).

Model families plug in through `families.ModelFamily` (see that module).
"""
