"""Federated learning algorithms as plain functions over numpy arrays: a hub-side local step and a
coordinator-side aggregate step for each algorithm. Nothing here knows about Flower or messages, so
every algorithm is testable (and comparable with its centralised form) without a federation."""
