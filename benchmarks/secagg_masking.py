"""Per-hub masking cost of FLUTE's secure aggregation against the physical limit.

Setting: 10 hubs, complete graph (9 pairwise masks + 1 self mask per hub), 1e6 values.
Measured: the hub's real `ClientSession.masked_input` stage (decrypt 9 share ciphertexts,
9 key agreements, fixed-point encode, 10 AES-256-CTR masks added in place).
Physical limit, measured in the same run on the same data: the AES-256-CTR keystream for the
same 10 x 8 MB on preallocated buffers (the faster of `cryptography`'s CTR mode and its GCM
path, which produces the same keystream with VAES), 10 in-place uint64 adds of 8 MB, and a bare
fixed-point encode (`np.rint(x * 2**24).astype(np.int64)`). Reference column: Flower 1.41's
SecAgg+ mask expansion (`flwr.common.secure_aggregation.secaggplus_utils.pseudo_rand_gen`, a
numpy RandomState seeded with a 32-bit fold of the seed) for 10 masks of 1e6 values, against
FLUTE's `MaskExpander.apply` of 10 masks (expansion AND the modular adds).
Times are CPU milliseconds (`time.process_time`; all single-threaded), best of `--repeats`.
Bytes: what one hub uploads over the whole protocol (advertisement, encrypted shares,
masked input, confirmation, unmask response) over the plaintext model in float64
(FLUTE's engine vectors) and, as a second column, float32.

Run: .venv/bin/python benchmarks/secagg_masking.py [--json PATH] [--repeats N]
"""

from __future__ import annotations

import argparse
import json
import os
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
    start = time.process_time()
    action()
    return (time.process_time() - start) * 1e3


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

    def keystreams(mode: Callable[[], modes.Mode]) -> Callable[[], None]:
        def expand() -> None:
            for _ in range(N_HUBS):
                Cipher(algorithms.AES(key), mode()).encryptor().update_into(zeros, keystream)

        return expand

    def modular_adds() -> None:
        for _ in range(N_HUBS):
            np.add(accumulator, mask, out=accumulator)

    def encode() -> None:
        np.rint(x * float(2**24)).astype(np.int64)

    return {
        "aes_ctr_mode": keystreams(lambda: modes.CTR(bytes(16))),
        "aes_ctr_gcm_path": keystreams(lambda: modes.GCM(bytes(12))),
        "add": modular_adds,
        "encode": encode,
    }


def expansion_actions() -> dict[str, Callable[[], object]]:
    """Ten masks of 1e6 values: FLUTE's AES-CTR expander (adding them in place) and Flower's pseudo_rand_gen."""
    from flwr.common.secure_aggregation.secaggplus_utils import pseudo_rand_gen

    expander, seeds = MaskExpander(LENGTH), [os.urandom(32) for _ in range(N_HUBS)]
    accumulator = np.zeros(LENGTH, dtype=np.uint64)
    return {
        "flute_expand": lambda: expander.apply(accumulator, added=seeds),
        "flower_expand": lambda: [pseudo_rand_gen(seed, 2**32, [(LENGTH,)]) for seed in seeds],
    }


def measure(x: np.ndarray, repeats: int) -> dict[str, float]:
    """Best (least disturbed) CPU time of each action over `repeats` rounds, FLUTE and the limit back to back."""
    actions = limit_actions(x) | expansion_actions()
    samples: dict[str, list[float]] = {name: [] for name in [*actions, "mask"]}
    for round_no in range(repeats):
        _, hubs, deliveries, _ = prepared_round(round_no)
        for name, action in actions.items():
            samples[name].append(timed_ms(action))
        samples["mask"].append(timed_ms(lambda: hubs[HUB].masked_input(deliveries[HUB], x)))
    best = {name: min(values) for name, values in samples.items()}
    best["aes_ctr"] = min(best["aes_ctr_mode"], best["aes_ctr_gcm_path"])
    best["limit"] = best["aes_ctr"] + best["add"] + best["encode"]
    return best


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

    print(f"secure aggregation masking, {N_HUBS} hubs (complete graph), {LENGTH:.0e} values, CPU ms, best of {args.repeats}")
    print(f"{'':40}{'FLUTE':>12}{'limit':>12}{'ratio':>8}")
    print(f"{'masked_input per hub (ms)':40}{m['mask']:12.2f}{m['limit']:12.2f}{m['mask'] / m['limit']:8.2f}")
    print(f"{'  limit: AES-256-CTR 10 x 8 MB (ms)':40}{'':12}{m['aes_ctr']:12.2f}")
    print(f"{'    CTR mode / GCM path (ms)':40}{'':12}{m['aes_ctr_mode']:12.2f}{m['aes_ctr_gcm_path']:8.2f}")
    print(f"{'  limit: 10 uint64 adds (ms)':40}{'':12}{m['add']:12.2f}")
    print(f"{'  limit: fixed-point encode (ms)':40}{'':12}{m['encode']:12.2f}")
    print(f"{'':40}{'FLUTE':>12}{'Flower':>12}{'ratio':>8}")
    print(f"{'10 masks (FLUTE: + adds) (ms)':40}{m['flute_expand']:12.2f}{m['flower_expand']:12.2f}{m['flute_expand'] / m['flower_expand']:8.2f}")
    print(f"{'':40}{'bytes':>12}{'/float64':>12}{'/float32':>8}")
    for stage, size in sent.items():
        print(f"{'  upload ' + stage:40}{size:12d}")
    print(f"{'upload per hub, whole round':40}{upload:12d}{upload / (8 * LENGTH):12.4f}{upload / (4 * LENGTH):8.4f}")

    if args.json:
        figures = {
            "mask_ms_per_hub_10h_1e6": round(m["mask"], 3),
            "limit_ms_per_hub_10h_1e6": round(m["limit"], 3),
            "mask_ratio_to_limit": round(m["mask"] / m["limit"], 3),
            "limit_aes_ctr_ms_10h_1e6": round(m["aes_ctr"], 3),
            "aes_ctr_mode_ms_10h_1e6": round(m["aes_ctr_mode"], 3),
            "aes_ctr_gcm_path_ms_10h_1e6": round(m["aes_ctr_gcm_path"], 3),
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
