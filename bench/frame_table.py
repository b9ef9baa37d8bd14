#!/usr/bin/env python3
"""Prints the docs/benchmarks.md table from frame_bench JSON output.

  build/release/bench/frame_bench --benchmark_repetitions=5 --benchmark_report_aggregates_only=true \
      --benchmark_out=frame.json --benchmark_out_format=json
  python3 bench/frame_table.py frame.json

Uses the median aggregates; the ratio divides a case's time per frame by BM_Memcpy's time per
payload of the same size from the same run.
"""
import json
import sys

CASES = {
    "BM_EncodeData": "Encode DATA (64 frames per take)",
    "BM_EncodePub": "Encode PUB, subject + reply (64 per take)",
    "BM_DecodeData": "Decode DATA, 1 MiB fed as one Slice",
    "BM_DecodeDataReads64K": "Decode DATA, 1 MiB fed in 64 KB reads",
    "BM_DecodePub": "Decode PUB, subject + reply, one Slice",
    "BM_EncodeDecodePub": "Encode + decode PUB (64 per take)",
    "BM_Memcpy": "Baseline: memcpy of the payload",
    "BM_Crc32c": "Baseline: CRC32C of the payload",
    "BM_SliceCopy": "Baseline: copy + drop one Slice (refcount +1/-1)",
}


def size_label(n):
    if n is None:
        return "-"
    return f"{n // 1024} KB" if n >= 1024 and n % 1024 == 0 else f"{n} B"


def main(path):
    with open(path) as f:
        data = json.load(f)
    rows = {}
    for b in data["benchmarks"]:
        if b.get("aggregate_name") != "median":
            continue
        name = b["run_name"]
        base, _, arg = name.partition("/")
        rows[(base, int(arg) if arg else None)] = (b["time_per_frame"] * 1e9, b["payload_bytes"] / 1e9)
    print("| Case | Payload | ns/frame (median) | GB/s (median) | vs memcpy of the same bytes |")
    print("|---|---|---:|---:|---:|")
    for base, label in CASES.items():
        for (b, size), (ns, gbs) in sorted(rows.items(), key=lambda kv: (kv[0][1] or 0)):
            if b != base:
                continue
            floor = rows.get(("BM_Memcpy", size))
            ratio = f"{ns / floor[0]:.2f}x" if floor and size else "-"
            gb = f"{gbs:.2f}" if size else "-"
            print(f"| {label} | {size_label(size)} | {ns:.1f} | {gb} | {ratio} |")
    ctx = data.get("context", {})
    print(f"\n{ctx.get('num_cpus')} CPUs at {ctx.get('mhz_per_cpu')} MHz, {ctx.get('date')}")


if __name__ == "__main__":
    main(sys.argv[1])
