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


def median_ms(action: Callable[[], object], repeats: int) -> float:
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        action()
        samples.append((time.perf_counter() - start) * 1e3)
    return statistics.median(samples)


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


def flute_masking_ms(x: np.ndarray, repeats: int) -> float:
    samples = []
    for round_no in range(repeats):
        _, hubs, deliveries, _ = prepared_round(round_no)
        samples.append(median_ms(lambda: hubs[HUB].masked_input(deliveries[HUB], x), 1))
    return statistics.median(samples)


def physical_limit_ms(x: np.ndarray, repeats: int) -> dict[str, float]:
    zeros = bytes(8 * LENGTH)
    keystream = bytearray(8 * LENGTH + 15)
    accumulator = np.zeros(LENGTH, dtype=np.uint64)
    key = os.urandom(32)

    def aes_ctr() -> None:
        for _ in range(N_HUBS):
            Cipher(algorithms.AES(key), modes.CTR(bytes(16))).encryptor().update_into(zeros, keystream)

    mask = np.frombuffer(keystream, dtype=np.uint64, count=LENGTH)

    def modular_adds() -> None:
        for _ in range(N_HUBS):
            np.add(accumulator, mask, out=accumulator)

    def encode() -> None:
        np.rint(x * float(2**24)).astype(np.int64)

    actions = {"aes_ctr": aes_ctr, "add": modular_adds, "encode": encode}
    parts = {name: median_ms(action, repeats) for name, action in actions.items()}
    parts["total"] = sum(parts.values())
    return parts


def flower_mask_expansion_ms(repeats: int) -> float:
    from flwr.common.secure_aggregation.secaggplus_utils import pseudo_rand_gen

    seed = os.urandom(32)
    return median_ms(lambda: [pseudo_rand_gen(seed, 2**32, [(LENGTH,)]) for _ in range(N_HUBS)], repeats)


def flute_mask_expansion_ms(repeats: int) -> float:
    expander, seed = MaskExpander(LENGTH), os.urandom(32)
    return median_ms(lambda: [expander.expand(seed) for _ in range(N_HUBS)], repeats)


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

    limit = physical_limit_ms(x, args.repeats)
    mask_ms = flute_masking_ms(x, args.repeats)
    ours_expand = flute_mask_expansion_ms(args.repeats)
    flower_expand = flower_mask_expansion_ms(args.repeats)
    sent = upload_bytes_per_hub(x)
    upload = sum(sent.values())
    key_material = upload - sent["masked_input"]

    print(f"secure aggregation masking, {N_HUBS} hubs (complete graph), {LENGTH:.0e} values, median of {args.repeats}")
    print(f"{'':38}{'FLUTE':>12}{'limit':>12}{'ratio':>8}")
    print(f"{'masked_input per hub (ms)':38}{mask_ms:12.2f}{limit['total']:12.2f}{mask_ms / limit['total']:8.2f}")
    print(f"{'  limit: AES-256-CTR 10 x 8 MB (ms)':38}{'':12}{limit['aes_ctr']:12.2f}")
    print(f"{'  limit: 10 uint64 adds (ms)':38}{'':12}{limit['add']:12.2f}")
    print(f"{'  limit: fixed-point encode (ms)':38}{'':12}{limit['encode']:12.2f}")
    print(f"{'':38}{'FLUTE':>12}{'Flower':>12}{'ratio':>8}")
    print(f"{'10 mask expansions (ms)':38}{ours_expand:12.2f}{flower_expand:12.2f}{ours_expand / flower_expand:8.2f}")
    print(f"{'':38}{'bytes':>12}{'/float64':>12}{'/float32':>8}")
    for stage, size in sent.items():
        print(f"{'  upload ' + stage:38}{size:12d}")
    print(f"{'upload per hub, whole round':38}{upload:12d}{upload / (8 * LENGTH):12.4f}{upload / (4 * LENGTH):8.4f}")

    if args.json:
        figures = {
            "mask_ms_per_hub_10h_1e6": round(mask_ms, 3),
            "limit_ms_per_hub_10h_1e6": round(limit["total"], 3),
            "mask_ratio_to_limit": round(mask_ms / limit["total"], 3),
            "limit_aes_ctr_ms_10h_1e6": round(limit["aes_ctr"], 3),
            "limit_add_ms_10h_1e6": round(limit["add"], 3),
            "limit_encode_ms_1e6": round(limit["encode"], 3),
            "flute_mask_expand_ms_10h_1e6": round(ours_expand, 3),
            "flower_mask_expand_ms_10h_1e6": round(flower_expand, 3),
            "mask_expand_ratio_flute_to_flower": round(ours_expand / flower_expand, 3),
            "upload_bytes_per_hub_10h_1e6": upload,
            "key_material_bytes_per_hub_10h_1e6": key_material,
            "bytes_ratio_10h_1e6": round(upload / (8 * LENGTH), 5),
            "bytes_ratio_denominator": "float64",
            "bytes_ratio_vs_float32_10h_1e6": round(upload / (4 * LENGTH), 5),
        }
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
