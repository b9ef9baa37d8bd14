#!/usr/bin/env python3
"""Writes the seed corpora of the reliable UDP security fuzz targets (udp_packet, udp_handshake, udp_cookie).

Packets are laid out here from docs/udp.md, independently of the C++ encoders; where a seed
needs genuine cryptography (a sealed packet, a full handshake) it only describes it, and the
target builds it (see the input layouts at the top of each udp_*_fuzz.cc). Rerun after a
format change:

    python3 tests/fuzz/make_udp_crypto_corpus.py
"""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))

CID_A = bytes([1] * 8)
CID_B = bytes([2] * 8)
NO_MUTATION = b"\x00\x00"  # count 0, cut 0


def initial(scid, token, msg, pad_to=1200):
    p = bytes([0xC0]) + struct.pack(">I", 1) + scid + struct.pack(">H", len(token)) + token
    p += struct.pack(">H", len(msg)) + msg
    return p + bytes(max(0, pad_to - len(p)))


def retry(dcid, token, tag=bytes(16)):
    return bytes([0xC1]) + struct.pack(">I", 1) + dcid + struct.pack(">H", len(token)) + token + tag


def response(dcid, msg):
    return bytes([0xC2]) + struct.pack(">I", 1) + dcid + struct.pack(">H", len(msg)) + msg


def short(dcid, pn_bytes, body):
    return bytes([0x40 | (len(pn_bytes) - 1)]) + dcid + pn_bytes + body


def mutations(*edits, cut=0):
    out = bytes([len(edits)])
    for off, x in edits:
        out += struct.pack("<HB", off, x)
    return out + bytes([cut])


def block(m):
    """The fixed 26-byte mutation block of udp_packet_fuzz mode 1."""
    return m + bytes(26 - len(m))


MSG1 = bytes(range(96))
MSG2 = bytes(range(56))
TOKEN = bytes(range(24))

SEEDS = {
    "udp_packet_fuzz": {
        "raw-short": b"\x00" + short(CID_A, b"\x07", bytes(32)),
        "raw-short-4": b"\x00" + short(CID_A, b"\x01\x02\x03\x04", bytes(17)),
        "raw-initial": b"\x00" + initial(CID_A, b"", MSG1),
        "raw-initial-token": b"\x00" + initial(CID_A, TOKEN, MSG1),
        "raw-retry": b"\x00" + retry(CID_A, TOKEN),
        "raw-response": b"\x00" + response(CID_A, MSG2),
        "sealed-first": b"\x01" + struct.pack("<QI", 0, 1) + block(NO_MUTATION) + b"hello",
        "sealed-far": b"\x01" + struct.pack("<QI", 1 << 40, 3000) + block(NO_MUTATION) + bytes(1200),
        "sealed-flip": b"\x01" + struct.pack("<QI", 77, 5) + block(mutations((3, 1))) + b"payload",
        "sealed-cut": b"\x01" + struct.pack("<QI", 9, 1) + block(mutations(cut=1)) + b"payload",
        "sealed-longer": b"\x01" + struct.pack("<QI", 9, 1) + block(mutations(cut=0x81)) + b"payload",
        "pn-rfc": b"\x02" + struct.pack("<QII", 0xA82F9B32, 0x734F, 5) + struct.pack("<QIB", 0xA82F30EB, 0x9B32, 1),
        "pn-edge": b"\x02" + struct.pack("<QII", (1 << 62) - 1, 1, 0) + struct.pack("<QIB", (1 << 62) - 1, 0xFF, 0),
        "replay-inorder": b"\x03\x00" + b"".join(struct.pack("<BH", 0, 1) for _ in range(200)),
        "replay-mixed": b"\x03\x03" + b"".join(struct.pack("<BH", k % 4, (k * 37) % 300) for k in range(1, 400)),
    },
    "udp_handshake_fuzz": {
        "server-initial": b"\x00" + initial(CID_A, b"", MSG1),
        "server-initial-cookies": b"\x04" + initial(CID_A, b"", MSG1),
        "server-initial-token": b"\x04" + initial(CID_A, TOKEN, MSG1),
        "server-small": b"\x00" + initial(CID_A, b"", MSG1, pad_to=0),
        "client-response": b"\x01" + response(CID_A, MSG2),
        "client-retry": b"\x01" + retry(CID_A, TOKEN),
        "exchange-clean": b"\x02" + NO_MUTATION * 4,
        "exchange-clean-cookies": b"\x06" + NO_MUTATION * 4,
        "exchange-initial-flip": b"\x02" + mutations((20, 0x40)) + NO_MUTATION * 3,
        "exchange-initial-padding": b"\x02" + mutations(cut=0x90) + NO_MUTATION * 3,
        "exchange-retry-flip": b"\x06" + NO_MUTATION + mutations((30, 1)) + NO_MUTATION * 2,
        "exchange-response-flip": b"\x02" + NO_MUTATION + mutations((16, 2)) + NO_MUTATION * 2,
        "exchange-response-longer": b"\x06" + NO_MUTATION * 3 + mutations(cut=0x81),
        "noise-msg1": b"\x03" + MSG1,
        "noise-short": b"\x03" + bytes(40),
    },
    "udp_cookie_fuzz": {
        "fresh": bytes([0]) + bytes(16) + struct.pack("<H", 4000) + b"\x08" + CID_A
        + struct.pack("<II", 5000, 1000) + NO_MUTATION,
        "expired": bytes([0x08]) + bytes(16) + struct.pack("<H", 4000) + b"\x08" + CID_A
        + struct.pack("<II", 5000, 20000) + NO_MUTATION,
        "other-port": bytes([0x01]) + bytes(16) + struct.pack("<H", 4000) + b"\x00"
        + struct.pack("<II", 1, 1) + NO_MUTATION,
        "rotated": bytes([0x1C]) + bytes(range(16)) + struct.pack("<H", 1) + b"\x00"
        + struct.pack("<II", 250000, 100000) + NO_MUTATION,
        "flipped": bytes([0]) + bytes(16) + struct.pack("<H", 9) + b"\x00"
        + struct.pack("<II", 7, 0) + mutations((10, 0x80)),
        "raw": bytes([0]) + bytes(16) + struct.pack("<H", 9) + b"\x00"
        + struct.pack("<II", 7, 0) + NO_MUTATION + bytes(24),
    },
}


def main():
    for target, seeds in SEEDS.items():
        d = os.path.join(HERE, "corpus", target)
        os.makedirs(d, exist_ok=True)
        for name, data in seeds.items():
            with open(os.path.join(d, name), "wb") as f:
                f.write(data)
        print(f"{target}: {len(seeds)} seeds")


if __name__ == "__main__":
    main()
