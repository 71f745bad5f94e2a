"""FHIR in and out: streaming readers, profile rules as data, the rule engine, extraction of
study variables, unit harmonisation, and builders for the FHIR resources FLUTE emits."""
