"""Hub ingest throughput and memory (F-PIL-5, NF-PIL-2/3/4): resources per second read,
validated, extracted and stored for the full simulated three-hospital cohort (Bulk NDJSON, one
hub per hospital, SQLite), side by side with parsing the same resources with fhir.resources
(R4B pydantic models) alone, plus the importer's peak RSS for the 1x and the 10x cohort.

Each import runs in a fresh child process so its peak RSS (ru_maxrss) is its own. The machine
is shared, so rates are also given per CPU second of the measured process (less sensitive to
other load than wall-clock rates).

What limits throughput: one Python process does everything. CPU per resource, measured with
per-phase timers on the 1x cohort: reading and JSON parsing ~4 us, IG validation ~7-11 us,
canonical JSON + SHA-256 ~3 us, the chunk's snapshot queries ~6 us, version placement and
bookkeeping ~8 us, SQLite inserts of the version and its provenance ~15-17 us (four indexes
and enforced foreign keys, all kept: they guarantee one current version, idempotent re-import
and provenance) and re-deriving study rows from the store ~22 us (re-read and parse ~7 us,
extraction ~11 us; rows come from the store, not the stream, because a patient's resources
arrive in several files and imports). About 70-90 us in all: 11-14k resources per CPU second,
against 7-11k for fhir.resources R4B parsing alone. Reaching 20,000/s on two cores needs the
work split over both: a reader/validator process feeding the single SQLite writer would take
~20 us per resource off the writer, leaving it ~55 us (snapshot, inserts, derivation) - about
18k/s - so derivation would have to move off the writer too. 10x the reference (~100k/s, ~10 us
per resource) is below the cost of SQLite's index maintenance alone in this schema.

    .venv/bin/python benchmarks/ingest.py [--json PATH] [--seed N]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import resource
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

TARGET_RESOURCES_PER_S = 20_000
TARGET_SPEEDUP = 10.0
TARGET_MEMORY_RATIO = 2.0


@dataclass(frozen=True)
class ImportRun:
    resources: int
    seconds: float
    cpu_seconds: float
    peak_rss_mb: float

    @property
    def per_s(self) -> float:
        return self.resources / self.seconds


def _site_dirs(cohort: Path) -> list[Path]:
    return sorted(p for p in cohort.iterdir() if p.is_dir())


def _import_child(cohort: Path, hubs: Path, results: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    """In a fresh process: one hub per site, import its directory, report totals and peak RSS."""
    from flute.hub.node import init_hub, open_hub

    homes = []
    for site in _site_dirs(cohort):
        home = hubs / site.name
        init_hub(home, site.name)
        homes.append((site, home))
    read = 0
    seconds = cpu = 0.0
    for site, home in homes:
        with open_hub(home) as hub:
            wall_start, cpu_start = time.perf_counter(), time.process_time()
            report = hub.import_paths([site])
            seconds += time.perf_counter() - wall_start
            cpu += time.process_time() - cpu_start
        if report.read != report.stored + report.unchanged + report.quarantined:
            raise AssertionError(f"counts do not add up for {site}: {report.to_json()}")
        read += report.read
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    results.put(ImportRun(read, seconds, cpu, peak_kib / 1024))


def run_import(cohort: Path, hubs: Path) -> ImportRun:
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    child = context.Process(target=_import_child, args=(cohort, hubs, results))
    child.start()
    run = results.get()
    child.join()
    if child.exitcode != 0:
        raise RuntimeError(f"import child exited with {child.exitcode}")
    return run


@dataclass(frozen=True)
class ParseRun:
    resources: int
    seconds: float
    cpu_seconds: float

    @property
    def per_s(self) -> float:
        return self.resources / self.seconds


def fhir_resources_parse(cohort: Path, *, from_bytes: bool) -> ParseRun:
    """Parse every NDJSON line of the cohort into its fhir.resources R4B model (no validation
    against the IG profiles, no extraction, no storage): the reference rate. `from_bytes`:
    pydantic's own JSON parser (`model_validate_json` on the line); otherwise `orjson.loads`
    then `model_validate` on the dict, timed together, since the hub's rate includes its own
    JSON parsing. The model class is looked up before timing."""
    import orjson
    from fhir.resources.R4B import get_fhir_model_class

    lines = [line for site in _site_dirs(cohort) for path in sorted(site.glob("*.ndjson")) for line in path.read_bytes().splitlines() if line]
    types = [json.loads(line)["resourceType"] for line in lines]
    models = {name: get_fhir_model_class(name) for name in set(types)}
    wall_start, cpu_start = time.perf_counter(), time.process_time()
    for name, line in zip(types, lines, strict=True):
        try:
            if from_bytes:
                models[name].model_validate_json(line)
            else:
                models[name].model_validate(orjson.loads(line))
        except ValueError:
            pass  # a resource fhir.resources rejects was parsed all the same
    return ParseRun(len(lines), time.perf_counter() - wall_start, time.process_time() - cpu_start)


def simulate(out: Path, seed: int, scale: float) -> None:
    from flute.cohort.simulate import simulate_cohort

    simulate_cohort(out, seed=seed, fmt="ndjson", scale=scale)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="write the figures as a flat JSON object")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="flute-bench-ingest-") as directory:
        root = Path(directory)
        simulate(root / "cohort-1x", args.seed, 1.0)
        simulate(root / "cohort-10x", args.seed, 10.0)
        one = run_import(root / "cohort-1x", root / "hubs-1x")
        parse = fhir_resources_parse(root / "cohort-1x", from_bytes=True)
        parse_dict = fhir_resources_parse(root / "cohort-1x", from_bytes=False)
        ten = run_import(root / "cohort-10x", root / "hubs-10x")

    speedup = one.per_s / parse.per_s
    cpu_rate, parse_cpu_rate = one.resources / one.cpu_seconds, parse.resources / parse.cpu_seconds
    dict_cpu_rate = parse_dict.resources / parse_dict.cpu_seconds
    memory_ratio = ten.peak_rss_mb / one.peak_rss_mb
    rows = [
        ("hub ingest 1x (read+validate+extract+store)", f"{one.resources} res", f"{one.per_s:,.0f} res/s", f"target >= {TARGET_RESOURCES_PER_S:,}"),
        ("  same, per CPU second of the importer", "", f"{cpu_rate:,.0f} res/s", ""),
        ("hub ingest 10x", f"{ten.resources} res", f"{ten.per_s:,.0f} res/s", ""),
        ("  same, per CPU second of the importer", "", f"{ten.resources / ten.cpu_seconds:,.0f} res/s", ""),
        ("fhir.resources model_validate_json (reference)", f"{parse.resources} res", f"{parse.per_s:,.0f} res/s", ""),
        ("  same, per CPU second", "", f"{parse_cpu_rate:,.0f} res/s", ""),
        ("fhir.resources orjson + model_validate", f"{parse_dict.resources} res", f"{parse_dict.per_s:,.0f} res/s", ""),
        ("  same, per CPU second", "", f"{dict_cpu_rate:,.0f} res/s", ""),
        ("speedup hub / fhir.resources (wall)", "", f"{speedup:.1f}x", f"target >= {TARGET_SPEEDUP:.0f}x"),
        ("speedup hub / fhir.resources (CPU)", "", f"{cpu_rate / parse_cpu_rate:.1f}x", ""),
        ("peak RSS importer 1x", "", f"{one.peak_rss_mb:.0f} MB", ""),
        ("peak RSS importer 10x", "", f"{ten.peak_rss_mb:.0f} MB", f"ratio {memory_ratio:.2f} (target < {TARGET_MEMORY_RATIO})"),
    ]
    for row in rows:
        print(f"{row[0]:<46} {row[1]:>12} {row[2]:>16}   {row[3]}")
    if args.json:
        args.json.write_text(json.dumps({
            "resources_per_s": round(one.per_s, 1),
            "fhir_resources_parse_per_s": round(parse.per_s, 1),
            "speedup": round(speedup, 2),
            "peak_rss_mb": round(one.peak_rss_mb, 1),
            "peak_rss_mb_10x": round(ten.peak_rss_mb, 1),
            "resources": one.resources,
            "resources_10x": ten.resources,
            "resources_per_s_10x": round(ten.per_s, 1),
            "resources_per_cpu_s_10x": round(ten.resources / ten.cpu_seconds, 1),
            "resources_per_cpu_s": round(cpu_rate, 1),
            "fhir_resources_parse_per_cpu_s": round(parse_cpu_rate, 1),
            "speedup_cpu": round(cpu_rate / parse_cpu_rate, 2),
            "fhir_resources_dict_parse_per_s": round(parse_dict.per_s, 1),
            "fhir_resources_dict_parse_per_cpu_s": round(dict_cpu_rate, 1),
            "speedup_vs_dict_parse": round(one.per_s / parse_dict.per_s, 2),
            "speedup_vs_dict_parse_cpu": round(cpu_rate / dict_cpu_rate, 2),
        }, indent=2) + "\n")


if __name__ == "__main__":
    sys.exit(main())
