"""The one place torch is imported for the neural generators, with the thread count set.

Why one thread by default: hubs and the coordinator run next to other work (a hub database,
several synthetic-data jobs at once, NF-IMSD-5), and the models here are small MLPs whose speed
hardly grows with threads; on a busy host, torch's spinning worker threads made small training
steps ~10x SLOWER than one thread (measured: 100 Adam steps of a 256-wide MLP, 24 s with 2
threads vs 2.3 s with 1, load 7 on 2 cores). `FLUTE_TORCH_THREADS` overrides it for a dedicated host.
"""

from __future__ import annotations

import os
from types import ModuleType

DEFAULT_THREADS = 1
THREADS_VARIABLE = "FLUTE_TORCH_THREADS"


def torch_module() -> ModuleType:
    """`torch`, imported on first use, with its intra-op thread count set (once)."""
    import torch

    wanted = _threads()
    if torch.get_num_threads() != wanted:
        torch.set_num_threads(wanted)
    return torch


def _threads() -> int:
    raw = os.environ.get(THREADS_VARIABLE, str(DEFAULT_THREADS))
    try:
        threads = int(raw)
    except ValueError:
        raise ValueError(f"{THREADS_VARIABLE} must be a positive integer, got {raw!r}") from None
    if threads < 1:
        raise ValueError(f"{THREADS_VARIABLE} must be a positive integer, got {raw!r}")
    return threads
