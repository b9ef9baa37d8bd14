#!/usr/bin/env python3
"""Writes the seed corpus of consumer_state_fuzz (tests/fuzz/corpus/consumer_state_fuzz/).

State records are built here from docs/streams.md ("Consumer files"), independently of the C++
encoder. Rerun after a format change:

    python3 tests/fuzz/make_consumer_corpus.py
"""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))

_TABLE = []
for _i in range(256):
    _c = _i
    for _ in range(8):
        _c = (_c >> 1) ^ 0x82F63B78 if _c & 1 else _c >> 1
    _TABLE.append(_c)


def crc32c(data):
    c = 0xFFFFFFFF
    for b in data:
        c = _TABLE[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def varint(v):
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def state(next_seq, delivered, deliveries, redeliveries, max_delivered, terminated, pending):
    body = b"SLCS" + bytes([1])
    for v in (next_seq, delivered, deliveries, redeliveries, max_delivered, terminated, len(pending)):
        body += varint(v)
    prev = 0
    for seq, n in pending:
        body += varint(seq - prev) + varint(n)
        prev = seq
    return body + struct.pack("<I", crc32c(body))


SEEDS = {
    "state-fresh": state(1, 0, 0, 0, 0, 0, []),
    "state-pending": state(301, 300, 320, 20, 2, 1, [(10, 1), (200, 3), (300, 1)]),
    "state-large-seq": state(1 << 40, (1 << 40) - 1, 5, 0, 0, 0, [((1 << 40) - 5, 2)]),
    "conf-durable": (b"name=orders\ndurable=true\ndeliver=all\nfilter=orders.>\nack=explicit\n"
                     b"ack_wait_ms=30000\nmax_deliver=5\nmax_ack_pending=1000\ninactive_threshold_ms=5000\n"),
    "conf-by-time": (b"name=t\ndurable=false\ndeliver=time\nstart_time_ns=1700000000000000000\nfilter=\n"
                     b"ack=none\nack_wait_ms=1000\nmax_deliver=0\nmax_ack_pending=10\ninactive_threshold_ms=100\n"),
    "conf-bad": b"name=x\ndeliver=sometimes\n",
}


def main():
    d = os.path.join(HERE, "corpus", "consumer_state_fuzz")
    os.makedirs(d, exist_ok=True)
    for name, data in SEEDS.items():
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
