"""The synthetic-data workspace: where a researcher's (or a coordinator's) synthetic artefacts
live - versioned saved generators and datasets, hyperparameter drafts, training jobs and usage
metering (`home`, `store`, `jobs`, `service`)."""
