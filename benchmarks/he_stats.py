"""CKKS aggregation of a statistics vector vs plaintext summation, over 3 and 10 hubs.

Usage: .venv/bin/python benchmarks/he_stats.py [--json PATH] [--repeats N]

The vector is what `flute stats` sends per hub for all 7 study variables: n, centred sum and sum
of squares (variance) followed by every variable's histogram (`flute.privacy.dp_stats`). HE time =
every hub encrypts and serialises its vector + the aggregator adds the ciphertexts + the key holder
decrypts; plaintext time = every hub serialises its float64 vector + the coordinator adds them.
Key generation is timed apart (once per query). The decrypted sum is checked against the
plaintext sum (`flute.privacy.he.check_precision`).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from flute.cohort.variables import VARIABLE_NAMES
from flute.engine.stats_variables import statistics_query
from flute.privacy.dp_stats import exact_statistics
from flute.privacy.he import KeyHolder, add_encrypted, check_precision, encrypt

HUB_COUNTS = (3, 10)
ROWS_PER_HUB = 2000


def hub_vectors(hubs: int, seed: int = 0) -> list[np.ndarray]:
    """One statistics vector per simulated hub: variance sums then histograms of all 7 variables."""
    rng = np.random.default_rng(seed)
    queries = [statistics_query(list(VARIABLE_NAMES), kind) for kind in ("variance", "histogram")]
    vectors = []
    for _ in range(hubs):
        columns = {
            "ageAtBiopsy": rng.normal(66, 7, ROWS_PER_HUB),
            "pcaFamilyHistory": rng.integers(0, 2, ROWS_PER_HUB).astype(float),
            "typeOfBiopsy": 2.0 * rng.integers(0, 2, ROWS_PER_HUB),
            "psa": rng.lognormal(1.8, 0.7, ROWS_PER_HUB),
            "dre": rng.integers(0, 2, ROWS_PER_HUB).astype(float),
            "prostateVolume": rng.normal(55, 20, ROWS_PER_HUB),
            "pirads": rng.integers(1, 6, ROWS_PER_HUB).astype(float),
        }
        vectors.append(np.concatenate([exact_statistics(query, columns).values for query in queries]))
    return vectors


def time_he(key_holder: KeyHolder, public: bytes, vectors: list[np.ndarray]) -> tuple[float, int, np.ndarray]:
    start = time.perf_counter()
    ciphertexts = [encrypt(public, vector) for vector in vectors]
    total = key_holder.decrypt(add_encrypted(public, ciphertexts), vectors[0].size)
    return (time.perf_counter() - start) * 1e3, len(ciphertexts[0]), total


def time_plain(vectors: list[np.ndarray]) -> tuple[float, np.ndarray]:
    start = time.perf_counter()
    sent = [vector.astype(np.float64).tobytes() for vector in vectors]
    total = np.sum([np.frombuffer(payload, dtype=np.float64) for payload in sent], axis=0)
    return (time.perf_counter() - start) * 1e3, total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="write the figures as a flat JSON object")
    parser.add_argument("--repeats", type=int, default=7, help="repetitions per hub count (median reported)")
    args = parser.parse_args(argv)

    start = time.perf_counter()
    key_holder = KeyHolder()
    public = key_holder.public_context()
    figures: dict[str, float] = {"he_keygen_ms": (time.perf_counter() - start) * 1e3, "he_public_context_bytes": len(public)}
    rows = []
    for hubs in HUB_COUNTS:
        vectors = hub_vectors(hubs)
        he_times, plain_times, errors = [], [], []
        for _ in range(args.repeats):
            he_ms, ciphertext_bytes, he_total = time_he(key_holder, public, vectors)
            plain_ms, plain_total = time_plain(vectors)
            he_times.append(he_ms)
            plain_times.append(plain_ms)
            errors.append(check_precision(he_total, plain_total))
        he_ms, plain_ms = statistics.median(he_times), statistics.median(plain_times)
        figures.update({f"he_ms_{hubs}h": he_ms, f"plain_ms_{hubs}h": plain_ms, f"he_ratio_{hubs}h": he_ms / plain_ms, f"he_max_rel_error_{hubs}h": max(errors)})
        figures["he_bytes_per_hub"] = ciphertext_bytes
        figures["plain_bytes_per_hub"] = vectors[0].size * 8
        figures["vector_length"] = vectors[0].size
        rows.append((hubs, he_ms, plain_ms, he_ms / plain_ms, max(errors)))

    print(f"statistics vector: {figures['vector_length']} values per hub (7 variables: n/sum/sumsq + histograms)")
    print(f"key generation {figures['he_keygen_ms']:.1f} ms; public context {figures['he_public_context_bytes'] / 1024:.0f} KiB")
    print(f"bytes per hub: HE {figures['he_bytes_per_hub'] / 1024:.0f} KiB vs plaintext {figures['plain_bytes_per_hub']} B")
    print(f"{'hubs':>5} {'HE ms':>10} {'plain ms':>10} {'HE/plain':>10} {'max rel err':>12}")
    for hubs, he_ms, plain_ms, ratio, error in rows:
        print(f"{hubs:>5} {he_ms:>10.2f} {plain_ms:>10.4f} {ratio:>10.0f} {error:>12.2e}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
