#!/usr/bin/env python3
"""Writes the seed corpus of udp_fec_fuzz (tests/fuzz/corpus/udp_fec_fuzz/).

FEC packets are built here from docs/udp.md ("Forward error correction"), independently of the
C++ encoder: the parity uses GF(2^8) with the polynomial 0x11D and the coefficient
1 / ((48 + r) XOR j). The input layout is described at the top of udp_fec_fuzz.cc. Rerun after a
format change:

    python3 tests/fuzz/make_fec_corpus.py
"""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "corpus", "udp_fec_fuzz")

EXP = [0] * 512
LOG = [0] * 256
x = 1
for i in range(255):
    EXP[i] = x
    LOG[x] = i
    x <<= 1
    if x & 0x100:
        x ^= 0x11D
for i in range(255, 512):
    EXP[i] = EXP[i - 255]


def mul(a, b):
    return 0 if a == 0 or b == 0 else EXP[LOG[a] + LOG[b]]


def inv(a):
    return EXP[255 - LOG[a]]


def block(block_id, sources, m):
    symbols = [struct.pack(">H", len(s)) + s for s in sources]
    n = max(len(s) for s in symbols)
    symbols = [s + bytes(n - len(s)) for s in symbols]
    out = [bytes([0x60]) + struct.pack(">I", block_id) + bytes([j]) + s for j, s in enumerate(sources)]
    for r in range(m):
        parity = bytearray(n)
        for j, sym in enumerate(symbols):
            c = inv((48 + r) ^ j)
            for b in range(n):
                parity[b] ^= mul(c, sym[b])
        out.append(bytes([0x61]) + struct.pack(">IBBB", block_id, r, len(sources), m) + bytes(parity))
    return out


def raw(packets, step=1):
    body = bytes([0, 8]) + struct.pack("<H", 4000)
    for p in packets:
        body += bytes([step]) + struct.pack("<H", len(p)) + p
    return body


def genuine(k, m, lost_mask, sources, mutations=()):
    body = bytes([1, k - 1, m - 1]) + struct.pack("<Q", lost_mask) + bytes([len(mutations)])
    for packet, offset, xor in mutations:
        body += bytes([packet]) + struct.pack("<H", offset) + bytes([xor])
    for s in sources:
        body += struct.pack("<H", len(s)) + s
    return body


def main():
    os.makedirs(OUT, exist_ok=True)
    srcs = [b"\x40protected-" + bytes([i]) * (5 + 37 * i) for i in range(4)]
    full = block(7, srcs, 2)
    seeds = {
        "raw-block-complete": raw(full),
        "raw-block-two-lost": raw([full[1], full[3], full[4], full[5]]),
        "raw-repairs-first": raw([full[5], full[4], full[0], full[2]]),
        "raw-duplicates": raw([full[0], full[0], full[4], full[4], full[1]]),
        "raw-not-fec": raw([b"\x40\x01abc", b"\xc0\x00\x00\x00\x01", b""]),
        "raw-two-blocks": raw(block(1, [b"a", b"bb"], 1) + block(2, [b"ccc" * 100], 3), 50),
        "raw-bad-headers": raw([b"\x60", b"\x61\x00\x00\x00\x00\x00\x00\x01xx", b"\x61\x00\x00\x00\x01\x05\x02\x02xyz"]),
        "genuine-no-loss": genuine(4, 2, 0, srcs),
        "genuine-two-lost": genuine(4, 2, 0b000101, srcs),
        "genuine-three-lost": genuine(4, 2, 0b010101, srcs),
        "genuine-damaged": genuine(4, 2, 0b000001, srcs, [(4, 9, 0x80)]),
        "genuine-wide": genuine(16, 4, 0b1111, [bytes([i]) * (i + 1) for i in range(16)]),
    }
    for name, data in seeds.items():
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
