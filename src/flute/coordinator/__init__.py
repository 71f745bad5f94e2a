"""The coordinator's own services: its governance database (identities, audit) and its HTTP API."""
