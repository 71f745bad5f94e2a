"""Hub ingest throughput and memory (F-PIL-5, NF-PIL-2/3/4): resources per second read,
validated, extracted and stored for the full simulated three-hospital cohort (Bulk NDJSON, one
hub per hospital, SQLite), side by side with parsing the same resources with fhir.resources
(R4B pydantic models) alone, plus the importer's peak RSS for the 1x and the 10x cohort.

Each import runs in a fresh child process so its peak RSS (ru_maxrss) is its own. The hub
imports large input on two processes when a second core is idle (`flute.hub.pipeline`: a
forked helper reads, validates and prepares while the importer decides and writes; both then
derive study rows); here the 1x and 10x imports run on two processes whatever the load, and
the 1x cohort is imported again with `two_processes=False` for comparison. CPU time counts both
processes; the peak RSS reported is the importer's plus its helper's. The machine is shared,
so rates are also given per CPU second (less sensitive to other load than wall-clock rates).

Where the time goes (CPU per resource, 1x cohort, per-phase timers, one process): preparing
~18-20 us (reading and JSON parsing ~7, IG validation ~6-7, canonical JSON + SHA-256 ~2,
subject, pseudonym and the record ~3), passing a prepared entry to the importer ~2 us
(pickling) + ~1.5 us (unpickling) plus the socket, the importer's decisions and writes ~21-23
us (snapshot queries ~3.5, version placement, SQLite inserts of each version and its provenance
~11-12 with four indexes and enforced foreign keys - all kept: they guarantee one current
version, idempotent re-import and provenance - and commits), re-deriving study rows from the
store ~15 us (re-read ~2 - each patient's resources are put in type and id order in Python: an
SQL ORDER BY copied every body through SQLite's sorter, ~3 us a row -, JSON parsing ~4,
extraction ~8; rows come from the store, not the stream, because a patient's resources arrive
in several files and imports), checkpointing the WAL ~2.5 of CPU and ~5 of wall time (fsync).
Pure per-resource work that recurs is memoised (parsing a subject reference - validation, the
importer and extraction each need it -, checking and reading a date, converting a unit). One
process: ~55-65 us of CPU per resource. Two processes: ~70-90 us in all (the hand-over and a
second SQLite connection), but the importer's own share - its decisions and writes plus half
the derivation, the critical path - is ~38-45 us: 20-26k resources/s when both cores are free
(measured 20.8-21.6k/s end to end at 1x on the idle machine before the fixed costs below were
cut).

On two processes the fixed and serial costs are kept off the critical path (a timeline of both
processes showed them at ~15% of the wall time at 1x): the helper checkpoints the WAL after each
chunk it sends, while the importer writes that chunk, so closing the store copies only the last
chunk and the derivation's writes (~1 us a resource instead of ~5); the helper is forked before
the batch is recorded and the batch is finished while it exits (~5 ms each); the derivation's
pseudonym ranges shrink, so both processes finish it within a few ms of each other. Measured on
the shared machine with other work running (so below the idle rate), ten alternating runs of the
1x import before/after: median 14.0k/15.1k resources/s (+8%, after ahead in 9 of 10 pairs);
this script: 14.3k and 16.7k before, 19.1k twice after, the importer's own CPU 51-60 us before,
42-45 after. When other work already occupies the cores, the wall-clock rate shows that load,
not the importer: compare the CPU rows.

The 10x target against fhir.resources is not reachable this way: fhir.resources R4B parses
~8-14k resources per CPU second (model_validate on a dict or from JSON text alike), ~70-120 us
each; 10x that is 80-140k resources/s, ~7-12 us per resource end to end - less than the
SQLite inserts alone cost here, and less than IG validation plus JSON parsing in Python.

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
from enum import Enum
from pathlib import Path

TARGET_RESOURCES_PER_S = 20_000
TARGET_SPEEDUP = 10.0
TARGET_MEMORY_RATIO = 2.0


@dataclass(frozen=True)
class ImportRun:
    resources: int
    seconds: float
    cpu_seconds: float
    importer_cpu_seconds: float
    peak_rss_mb: float

    @property
    def per_s(self) -> float:
        return self.resources / self.seconds


def _site_dirs(cohort: Path) -> list[Path]:
    return sorted(p for p in cohort.iterdir() if p.is_dir())


def _cpu_seconds() -> tuple[float, float]:
    """CPU time of this process with its reaped children (the import helpers), and without."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    importer = own.ru_utime + own.ru_stime
    return importer + children.ru_utime + children.ru_stime, importer


def _import_child(cohort: Path, hubs: Path, two_processes: bool, results: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    """In a fresh process: one hub per site, import its directory, report totals and peak RSS
    (this process's plus its helpers' largest)."""
    from flute.hub.node import init_hub, open_hub

    homes = []
    for site in _site_dirs(cohort):
        home = hubs / site.name
        init_hub(home, site.name)
        homes.append((site, home))
    read = 0
    seconds = cpu = importer_cpu = 0.0
    for site, home in homes:
        with open_hub(home) as hub:
            wall_start, (cpu_start, importer_start) = time.perf_counter(), _cpu_seconds()
            report = hub.import_paths([site], two_processes=two_processes)
            hub.store.close()  # timed too: closing the store checkpoints what the import left in the WAL
            seconds += time.perf_counter() - wall_start
            cpu_end, importer_end = _cpu_seconds()
            cpu += cpu_end - cpu_start
            importer_cpu += importer_end - importer_start
        if report.read != report.stored + report.unchanged + report.quarantined:
            raise AssertionError(f"counts do not add up for {site}: {report.to_json()}")
        read += report.read
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss + resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    results.put(ImportRun(read, seconds, cpu, importer_cpu, peak_kib / 1024))


def run_import(cohort: Path, hubs: Path, *, two_processes: bool) -> ImportRun:
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    child = context.Process(target=_import_child, args=(cohort, hubs, two_processes, results))
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


class ParseMode(Enum):
    JSON_TEXT = "model_validate_json on the line (pydantic's own JSON parser)"
    ORJSON_THEN_DICT = "orjson.loads + model_validate, timed together"
    DICT = "model_validate on dicts parsed before timing"


def fhir_resources_parse(cohort: Path, mode: ParseMode) -> ParseRun:
    """Parse every NDJSON line of the cohort into its fhir.resources R4B model (no validation
    against the IG profiles, no extraction, no storage): the reference rate, three ways. The
    hub's rate includes its own JSON parsing, so JSON_TEXT and ORJSON_THEN_DICT are the like for
    like references; DICT (JSON already parsed) is the most favourable to fhir.resources. The
    model class is looked up before timing."""
    import orjson
    from fhir.resources.R4B import get_fhir_model_class

    lines = [line for site in _site_dirs(cohort) for path in sorted(site.glob("*.ndjson")) for line in path.read_bytes().splitlines() if line]
    types = [json.loads(line)["resourceType"] for line in lines]
    models = {name: get_fhir_model_class(name) for name in set(types)}
    dicts = [orjson.loads(line) for line in lines] if mode is ParseMode.DICT else []
    wall_start, cpu_start = time.perf_counter(), time.process_time()
    for index, (name, line) in enumerate(zip(types, lines, strict=True)):
        try:
            if mode is ParseMode.JSON_TEXT:
                models[name].model_validate_json(line)
            elif mode is ParseMode.ORJSON_THEN_DICT:
                models[name].model_validate(orjson.loads(line))
            else:
                models[name].model_validate(dicts[index])
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
        one = run_import(root / "cohort-1x", root / "hubs-1x", two_processes=True)
        single = run_import(root / "cohort-1x", root / "hubs-1x-single", two_processes=False)
        parse = fhir_resources_parse(root / "cohort-1x", ParseMode.JSON_TEXT)
        parse_dict = fhir_resources_parse(root / "cohort-1x", ParseMode.ORJSON_THEN_DICT)
        parse_parsed = fhir_resources_parse(root / "cohort-1x", ParseMode.DICT)
        ten = run_import(root / "cohort-10x", root / "hubs-10x", two_processes=True)

    speedup = one.per_s / parse.per_s
    cpu_rate, parse_cpu_rate = one.resources / one.cpu_seconds, parse.resources / parse.cpu_seconds
    dict_cpu_rate = parse_dict.resources / parse_dict.cpu_seconds
    memory_ratio = ten.peak_rss_mb / one.peak_rss_mb
    rows = [
        ("hub ingest 1x, two processes (end to end)", f"{one.resources} res", f"{one.per_s:,.0f} res/s", f"target >= {TARGET_RESOURCES_PER_S:,}"),
        ("  same, per CPU second (importer + helper)", "", f"{cpu_rate:,.0f} res/s", f"{1e6 / cpu_rate:.0f} us CPU/res"),
        ("  importer's own CPU (the critical path)", "", f"{one.resources / one.importer_cpu_seconds:,.0f} res/s", f"{1e6 * one.importer_cpu_seconds / one.resources:.0f} us CPU/res"),
        ("hub ingest 1x, one process", f"{single.resources} res", f"{single.per_s:,.0f} res/s", ""),
        ("  same, per CPU second", "", f"{single.resources / single.cpu_seconds:,.0f} res/s", f"{1e6 * single.cpu_seconds / single.resources:.0f} us CPU/res"),
        ("hub ingest 10x, two processes", f"{ten.resources} res", f"{ten.per_s:,.0f} res/s", ""),
        ("  same, per CPU second (importer + helper)", "", f"{ten.resources / ten.cpu_seconds:,.0f} res/s", f"{1e6 * ten.cpu_seconds / ten.resources:.0f} us CPU/res"),
        ("  importer's own CPU (the critical path)", "", f"{ten.resources / ten.importer_cpu_seconds:,.0f} res/s", f"{1e6 * ten.importer_cpu_seconds / ten.resources:.0f} us CPU/res"),
        ("fhir.resources model_validate_json (reference)", f"{parse.resources} res", f"{parse.per_s:,.0f} res/s", ""),
        ("  same, per CPU second", "", f"{parse_cpu_rate:,.0f} res/s", ""),
        ("fhir.resources orjson + model_validate", f"{parse_dict.resources} res", f"{parse_dict.per_s:,.0f} res/s", ""),
        ("  same, per CPU second", "", f"{dict_cpu_rate:,.0f} res/s", ""),
        ("fhir.resources model_validate, dicts pre-parsed", f"{parse_parsed.resources} res", f"{parse_parsed.per_s:,.0f} res/s", ""),
        ("  same, per CPU second", "", f"{parse_parsed.resources / parse_parsed.cpu_seconds:,.0f} res/s", ""),
        ("speedup hub / fhir.resources (wall)", "", f"{speedup:.1f}x", f"target >= {TARGET_SPEEDUP:.0f}x"),
        ("speedup hub / fhir.resources (CPU)", "", f"{cpu_rate / parse_cpu_rate:.1f}x", ""),
        ("peak RSS importer + helper 1x", "", f"{one.peak_rss_mb:.0f} MB", ""),
        ("peak RSS importer + helper 10x", "", f"{ten.peak_rss_mb:.0f} MB", f"ratio {memory_ratio:.2f} (target < {TARGET_MEMORY_RATIO})"),
    ]
    for row in rows:
        print(f"{row[0]:<46} {row[1]:>12} {row[2]:>16}   {row[3]}")
    if speedup < TARGET_SPEEDUP:
        print(f"speedup target ({TARGET_SPEEDUP:.0f}x) not met: see the docstring of benchmarks/ingest.py for why")
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
            "cpu_us_per_resource": round(1e6 / cpu_rate, 1),
            "importer_cpu_us_per_resource": round(1e6 * one.importer_cpu_seconds / one.resources, 1),
            "importer_cpu_us_per_resource_10x": round(1e6 * ten.importer_cpu_seconds / ten.resources, 1),
            "resources_per_s_one_process": round(single.per_s, 1),
            "resources_per_cpu_s_one_process": round(single.resources / single.cpu_seconds, 1),
            "fhir_resources_parse_per_cpu_s": round(parse_cpu_rate, 1),
            "speedup_cpu": round(cpu_rate / parse_cpu_rate, 2),
            "fhir_resources_dict_parse_per_s": round(parse_dict.per_s, 1),
            "fhir_resources_dict_parse_per_cpu_s": round(dict_cpu_rate, 1),
            "speedup_vs_dict_parse": round(one.per_s / parse_dict.per_s, 2),
            "speedup_vs_dict_parse_cpu": round(cpu_rate / dict_cpu_rate, 2),
            "fhir_resources_preparsed_dict_per_s": round(parse_parsed.per_s, 1),
            "fhir_resources_preparsed_dict_per_cpu_s": round(parse_parsed.resources / parse_parsed.cpu_seconds, 1),
        }, indent=2) + "\n")


if __name__ == "__main__":
    sys.exit(main())
