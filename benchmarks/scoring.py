"""Scoring service latency and throughput against in-process scoring of the same requests.

Setting: a logistic csPCa model (7 StudyVariables, fitted on simulated patients) packaged as a
signed artifact, verified, and served by `flute score serve` (uvicorn, one process) on a
loopback port. Requests are FHIR transaction Bundles of simulated, eligible patients
(`flute.deploy.examples`), each patient ~6 resources.

Measured over HTTP (httpx client, keep-alive): latency of single-patient POST /score calls
(p50, p99) and throughput of 1,000-patient batches. Reference, same run, same request bytes:
the in-process scoring function (`score_units` + RiskAssessment Bundle + JSON encoding), i.e. the
service's work without HTTP; the ratio is the cost of the service layer.

Run: .venv/bin/python benchmarks/scoring.py [--json PATH] [--single N] [--batches N]
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import httpx
import numpy as np
import orjson

from flute.cohort.sim_patients import draw_site_patients
from flute.cohort.sites import SITES
from flute.cohort.variables import VARIABLE_NAMES
from flute.deploy.artifact import ScoringModel, load_verified, package_model
from flute.deploy.examples import example_bundle
from flute.deploy.keys import generate_key_pair, load_signing_key, load_trusted_keys
from flute.deploy.manifest import TrainingProvenance
from flute.deploy.scoring import assessments_bundle, score_units
from flute.fhir.readers import document_units
from flute.learn.estimator import FederatedLogisticRegression
from flute.learn.preprocess import Standardiser, column_sums, log_transform

LOG_COLUMNS = ("psa", "prostateVolume")
BATCH = 1000


def build_artifact(root: Path) -> tuple[Path, Path]:
    """A fitted, packaged logistic model; returns (artifact, trust directory)."""
    patients = [p for p in draw_site_patients(SITES[0], 3000, np.random.default_rng(1)) if p.truly_included]
    rows = [p.expected_row() for p in patients]
    features = np.array([[np.nan if r.variables[n] is None else float(r.variables[n]) for n in VARIABLE_NAMES] for r in rows])
    labels = np.array([p.cspca for p in patients], dtype=np.float64)
    standardiser = Standardiser.from_sums(VARIABLE_NAMES, LOG_COLUMNS, column_sums(log_transform(features, VARIABLE_NAMES, LOG_COLUMNS)))
    model = FederatedLogisticRegression(l2=1e-3).fit(standardiser.transform(features), labels)
    keys = generate_key_pair(root / "keys")
    provenance = TrainingProvenance(
        study_id="bench", spec_sha256="0" * 64, hubs=("hub-a",), rounds=model.n_rounds_, trained_at=datetime.now(timezone.utc), code_version="bench"
    )
    artifact = package_model(model, standardiser, provenance, None, root / "artifact", load_signing_key(keys.private_key))
    trust = root / "trust"
    trust.mkdir()
    shutil.copy(keys.public_key, trust / keys.public_key.name)
    return artifact, trust


def start_service(artifact: Path, trust: Path) -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "flute.cli.main", "score", "serve", str(artifact), "--port", str(port), "--trust", str(trust)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return process, url
        except httpx.TransportError:
            time.sleep(0.1)
    process.terminate()
    raise RuntimeError("the scoring service did not start within 60 s")


def in_process(model: ScoringModel, body: bytes) -> bytes:
    """What the service does for one request, without HTTP."""
    report = score_units(document_units(body, "request"), model)
    if report.failed:
        raise RuntimeError(f"benchmark request refused: {[issue.message for issue in report.issues][:3]}")
    return orjson.dumps(assessments_bundle(report, model))


def timings_ms(action: Callable[[bytes], object], bodies: list[bytes]) -> list[float]:
    out = []
    for body in bodies:
        start = time.perf_counter()
        action(body)
        out.append((time.perf_counter() - start) * 1e3)
    return out


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="write the figures as a flat JSON object")
    parser.add_argument("--single", type=int, default=400, help="single-patient calls (default 400)")
    parser.add_argument("--batches", type=int, default=5, help="1,000-patient batch calls (default 5)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as scratch:
        artifact, trust = build_artifact(Path(scratch))
        model = load_verified(artifact, load_trusted_keys(trust))
        singles = [orjson.dumps(example_bundle(1, seed=seed)) for seed in range(args.single)]
        batches = [orjson.dumps(example_bundle(BATCH, seed=10_000 + seed)) for seed in range(args.batches)]
        process, url = start_service(artifact, trust)
        try:
            with httpx.Client(base_url=url, headers={"Content-Type": "application/fhir+json"}, timeout=120) as client:

                def post(body: bytes) -> None:
                    response = client.post("/score", content=body)
                    if response.status_code != 200:
                        raise RuntimeError(f"POST /score answered {response.status_code}: {response.text[:300]}")

                for body in singles[:20]:  # warm-up: connections, imports, caches
                    post(body)
                    in_process(model, body)
                http_single = timings_ms(post, singles)
                local_single = timings_ms(lambda body: in_process(model, body), singles)
                http_batch = timings_ms(post, batches)
                local_batch = timings_ms(lambda body: in_process(model, body), batches)
        finally:
            process.terminate()
            process.wait(timeout=30)

    figures = {
        "score_p50_ms": percentile(http_single, 50),
        "score_p99_ms": percentile(http_single, 99),
        "inprocess_p50_ms": percentile(local_single, 50),
        "inprocess_p99_ms": percentile(local_single, 99),
        "batch_1000_patients_per_s": BATCH / (statistics.median(http_batch) / 1e3),
        "inprocess_patients_per_s": BATCH / (statistics.median(local_batch) / 1e3),
    }
    figures["single_latency_ratio"] = figures["score_p50_ms"] / figures["inprocess_p50_ms"]
    figures["batch_throughput_ratio"] = figures["batch_1000_patients_per_s"] / figures["inprocess_patients_per_s"]

    print(f"{'':34}{'HTTP service':>14}{'in-process':>14}{'ratio':>8}")
    print(f"{'single patient p50 (ms)':34}{figures['score_p50_ms']:14.2f}{figures['inprocess_p50_ms']:14.2f}{figures['single_latency_ratio']:8.2f}")
    print(f"{'single patient p99 (ms)':34}{figures['score_p99_ms']:14.2f}{figures['inprocess_p99_ms']:14.2f}{figures['score_p99_ms'] / figures['inprocess_p99_ms']:8.2f}")
    print(f"{'1,000-patient batch (patients/s)':34}{figures['batch_1000_patients_per_s']:14.0f}{figures['inprocess_patients_per_s']:14.0f}{figures['batch_throughput_ratio']:8.2f}")
    print(f"({args.single} single calls, {args.batches} batches of {BATCH}; loopback, keep-alive, one uvicorn worker)")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
