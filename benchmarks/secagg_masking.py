"""Per-hub masking cost of FLUTE's secure aggregation against the physical limit.

Setting: 10 hubs, complete graph (9 pairwise masks + 1 self mask per hub), 1e6 values.
Measured: the hub's real `ClientSession.masked_input` stage (decrypt 9 share
ciphertexts, fixed-point encode, 10 AES-256-CTR mask expansions, 10 modular adds).
Physical limit, measured in the same run on the same data: AES-256-CTR keystream for
the same 10 x 8 MB, 10 in-place uint64 adds, and a bare fixed-point encode
(rint(x * scale) -> int64). Reference column: Flower 1.41's SecAgg+ mask expansion
(`flwr.common.secure_aggregation.secaggplus_utils.pseudo_rand_gen`, a numpy RandomState
seeded with a 32-bit fold of the seed), called directly for 10 masks of 1e6 values.
Bytes: what one hub uploads over the whole protocol (advertisement, encrypted shares,
masked input, confirmation, unmask response) over the plaintext model in float64
(FLUTE's numpy models) and, as a second column, float32.

Run: .venv/bin/python benchmarks/secagg_masking.py [--json PATH] [--repeats N]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from flute.privacy.secagg import ClientSession, SecAggConfig, ServerSession, enrol_hubs
from flute.privacy.secagg.prg import MaskExpander

N_HUBS = 10
LENGTH = 1_000_000
HUB = 0


def timed_ms(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return (time.perf_counter() - start) * 1e3


def prepared_round(round_no: int) -> tuple[ServerSession, dict[int, ClientSession], dict, dict[str, int]]:
    """A round advanced to the masked-input stage (so only masking is timed) and hub 0's upload sizes."""
    config = SecAggConfig(f"bench/{round_no}", tuple(range(N_HUBS)), LENGTH, threshold=N_HUBS // 2 + 1)
    identities, enrolled = enrol_hubs(config.hub_ids)
    server = ServerSession(config, enrolled)
    hubs = {hub: ClientSession(config, hub, identities[hub], enrolled) for hub in config.hub_ids}
    advertisements = {hub: session.advertise_keys() for hub, session in hubs.items()}
    directory = server.collect_keys(advertisements.values())
    shares = {hub: session.share_keys(directory) for hub, session in hubs.items()}
    deliveries = server.route_shares(shares.values())
    sent = {"advertise_keys": len(advertisements[HUB].to_bytes()), "share_keys": len(shares[HUB].to_bytes())}
    return server, hubs, deliveries, sent


def limit_actions(x: np.ndarray) -> dict[str, Callable[[], object]]:
    """The work any masking of 10 masks over 1e6 values must do, on preallocated buffers."""
    zeros = bytes(8 * LENGTH)
    keystream = bytearray(8 * LENGTH + 15)
    accumulator = np.zeros(LENGTH, dtype=np.uint64)
    mask = np.frombuffer(keystream, dtype=np.uint64, count=LENGTH)
    key = os.urandom(32)

    def aes_ctr() -> None:
        for _ in range(N_HUBS):
            Cipher(algorithms.AES(key), modes.CTR(bytes(16))).encryptor().update_into(zeros, keystream)

    def modular_adds() -> None:
        for _ in range(N_HUBS):
            np.add(accumulator, mask, out=accumulator)

    def encode() -> None:
        np.rint(x * float(2**24)).astype(np.int64)

    return {"aes_ctr": aes_ctr, "add": modular_adds, "encode": encode}


def expansion_actions() -> dict[str, Callable[[], object]]:
    """Ten mask expansions of 1e6 values: FLUTE's AES-CTR expander and Flower's pseudo_rand_gen."""
    from flwr.common.secure_aggregation.secaggplus_utils import pseudo_rand_gen

    expander, seed = MaskExpander(LENGTH), os.urandom(32)
    return {
        "flute_expand": lambda: [expander.expand(seed) for _ in range(N_HUBS)],
        "flower_expand": lambda: [pseudo_rand_gen(seed, 2**32, [(LENGTH,)]) for _ in range(N_HUBS)],
    }


def measure(x: np.ndarray, repeats: int) -> dict[str, float]:
    """Medians over repeats; each repeat times FLUTE and the limit back to back (shared-CPU noise)."""
    actions = limit_actions(x) | expansion_actions()
    samples: dict[str, list[float]] = {name: [] for name in [*actions, "limit", "mask", "ratio"]}
    for round_no in range(repeats):
        _, hubs, deliveries, _ = prepared_round(round_no)
        for name, action in actions.items():
            samples[name].append(timed_ms(action))
        samples["mask"].append(timed_ms(lambda: hubs[HUB].masked_input(deliveries[HUB], x)))
        samples["limit"].append(sum(samples[name][-1] for name in ("aes_ctr", "add", "encode")))
        samples["ratio"].append(samples["mask"][-1] / samples["limit"][-1])
    return {name: statistics.median(values) for name, values in samples.items()}


def upload_bytes_per_hub(x: np.ndarray) -> dict[str, int]:
    """Bytes hub 0 uploads at each stage of a complete round."""
    server, hubs, deliveries, sent = prepared_round(10_000)
    masked = {hub: session.masked_input(deliveries[hub], x) for hub, session in hubs.items()}
    survivors = server.collect_masked(masked.values())
    confirmations = {hub: session.confirm_survivors(survivors) for hub, session in hubs.items()}
    request = server.collect_confirmations(confirmations.values())
    responses = {hub: session.unmask(request) for hub, session in hubs.items()}
    server.collect_unmask(responses.values())
    sent["masked_input"] = len(masked[HUB].to_bytes())
    sent["confirm_survivors"] = len(confirmations[HUB].to_bytes())
    sent["unmask"] = len(responses[HUB].to_bytes())
    return sent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="write the figures as a flat JSON object")
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    x = np.random.default_rng(0).normal(0.0, 1.0, LENGTH)

    m = measure(x, args.repeats)
    sent = upload_bytes_per_hub(x)
    upload = sum(sent.values())
    key_material = upload - sent["masked_input"]

    print(f"secure aggregation masking, {N_HUBS} hubs (complete graph), {LENGTH:.0e} values, median of {args.repeats} (ratio: median of per-repeat ratios)")
    print(f"{'':38}{'FLUTE':>12}{'limit':>12}{'ratio':>8}")
    print(f"{'masked_input per hub (ms)':38}{m['mask']:12.2f}{m['limit']:12.2f}{m['ratio']:8.2f}")
    print(f"{'  limit: AES-256-CTR 10 x 8 MB (ms)':38}{'':12}{m['aes_ctr']:12.2f}")
    print(f"{'  limit: 10 uint64 adds (ms)':38}{'':12}{m['add']:12.2f}")
    print(f"{'  limit: fixed-point encode (ms)':38}{'':12}{m['encode']:12.2f}")
    print(f"{'':38}{'FLUTE':>12}{'Flower':>12}{'ratio':>8}")
    print(f"{'10 mask expansions (ms)':38}{m['flute_expand']:12.2f}{m['flower_expand']:12.2f}{m['flute_expand'] / m['flower_expand']:8.2f}")
    print(f"{'':38}{'bytes':>12}{'/float64':>12}{'/float32':>8}")
    for stage, size in sent.items():
        print(f"{'  upload ' + stage:38}{size:12d}")
    print(f"{'upload per hub, whole round':38}{upload:12d}{upload / (8 * LENGTH):12.4f}{upload / (4 * LENGTH):8.4f}")

    if args.json:
        figures = {
            "mask_ms_per_hub_10h_1e6": round(m["mask"], 3),
            "limit_ms_per_hub_10h_1e6": round(m["limit"], 3),
            "mask_ratio_to_limit": round(m["ratio"], 3),
            "limit_aes_ctr_ms_10h_1e6": round(m["aes_ctr"], 3),
            "limit_add_ms_10h_1e6": round(m["add"], 3),
            "limit_encode_ms_1e6": round(m["encode"], 3),
            "flute_mask_expand_ms_10h_1e6": round(m["flute_expand"], 3),
            "flower_mask_expand_ms_10h_1e6": round(m["flower_expand"], 3),
            "mask_expand_ratio_flute_to_flower": round(m["flute_expand"] / m["flower_expand"], 3),
            "upload_bytes_per_hub_10h_1e6": upload,
            "key_material_bytes_per_hub_10h_1e6": key_material,
            "bytes_ratio_10h_1e6": round(upload / (8 * LENGTH), 5),
            "bytes_ratio_denominator": "float64",
            "bytes_ratio_vs_float32_10h_1e6": round(upload / (4 * LENGTH), 5),
        }
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
