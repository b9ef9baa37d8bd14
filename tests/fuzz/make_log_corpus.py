#!/usr/bin/env python3
"""Writes the seed corpora of the log fuzz targets (tests/fuzz/corpus/log_batch_fuzz/ and
tests/fuzz/corpus/log_index_fuzz/).

Batches and index files are built here from docs/storage.md, independently of the C++ encoder,
so the seeds also check that the document is precise enough to write a writer from. Rerun after
a format change:

    python3 tests/fuzz/make_log_corpus.py
"""
import hashlib
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))

# CRC32C (Castagnoli), reflected polynomial 0x82F63B78.
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


assert crc32c(b"123456789") == 0xE3069283


def varint(v):
    out = bytearray()
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


def zigzag(v):
    return ((v << 1) ^ (v >> 63)) & 0xFFFFFFFFFFFFFFFF


def field(b):
    return varint(len(b)) + b


def record(ts_delta, payload, subject=None, headers=None, msg_id=None):
    attrs = (1 if subject is not None else 0) | (2 if headers is not None else 0) | (4 if msg_id is not None else 0)
    body = bytes([attrs]) + varint(zigzag(ts_delta))
    for f in (subject, headers, msg_id):
        if f is not None:
            body += field(f)
    body += payload
    return varint(len(body)) + body


def batch(base, first_ts, records):
    """records: list of (timestamp, payload, subject, headers, msg_id)."""
    body = b"".join(record(ts - first_ts, p, s, h, m) for ts, p, s, h, m in records)
    max_ts = max(ts for ts, *_ in records)
    length = 48 + len(body)
    rest = struct.pack("<IBBHQIIqq", length, 1, 0, 0, base, len(records), 0, first_ts, max_ts) + body
    return b"SLGB" + struct.pack("<I", crc32c(rest)) + rest


def offset_index(base, next_seq, seg_bytes, records, first_ts, max_ts, entries):
    out = b"SLIX" + struct.pack("<IQQQQqqII", 1, base, next_seq, seg_bytes, records, first_ts, max_ts, len(entries), 0)
    for seq, pos in entries:
        out += struct.pack("<QQ", seq, pos)
    return out + struct.pack("<I", crc32c(out))


def time_index(base, seg_bytes, entries):
    out = b"SLTX" + struct.pack("<IQQII", 1, base, seg_bytes, len(entries), 0)
    for ts, seq in entries:
        out += struct.pack("<qQ", ts, seq)
    return out + struct.pack("<I", crc32c(out))


def write(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def main():
    t = 1_700_000_000_000_000_000
    b1 = batch(1, t, [(t, b"hello", b"orders.eu", None, None)])
    b2 = batch(2, t + 5, [(t + 5, b"", None, b"\x01\x01k\x01v", b"id-1"), (t + 3, b"x" * 40, b"", b"", None)])
    b3 = batch(4, t + 9, [(t + 9 + i, bytes([i]) * i, b"s.%d" % i, None, b"m%d" % i) for i in range(6)])
    write("log_batch_fuzz", "one-record", b1)
    write("log_batch_fuzz", "fields", b2)
    write("log_batch_fuzz", "six-records", b3)
    seg = b1 + b2 + b3
    write("log_batch_fuzz", "segment", seg)
    damaged = bytearray(seg)
    damaged[len(b1) + 20] ^= 0x40
    write("log_batch_fuzz", "segment-damaged-middle", bytes(damaged))
    write("log_batch_fuzz", "segment-torn-tail", seg[:-7])
    write("log_batch_fuzz", "segment-garbage-between", b1 + b"SLGB" + b"\x00" * 30 + b2)

    seg_bytes = len(seg)
    write("log_index_fuzz", "offset-empty", offset_index(1, 10, seg_bytes, 9, t, t + 14, []))
    write("log_index_fuzz", "offset-two",
          offset_index(1, 10, seg_bytes, 9, t, t + 14, [(2, len(b1)), (4, len(b1) + len(b2))]))
    write("log_index_fuzz", "time-empty", time_index(1, seg_bytes, []))
    write("log_index_fuzz", "time-two", time_index(1, seg_bytes, [(t, 2), (t + 5, 4)]))
    write("log_index_fuzz", "time-min", time_index(7, 100, [(-(1 << 63), 8)]))

    digest = hashlib.sha256(seg).hexdigest()[:12]
    print("wrote log corpora (segment sha256 %s)" % digest)


if __name__ == "__main__":
    main()
