#!/usr/bin/env python3
"""Writes the seed corpora of the reliable-UDP fuzz targets (tests/fuzz/corpus/udp_*_fuzz/).

Frames are built here from docs/udp.md ("Packets and frames"), independently of the C++
encoder. The input layouts are described at the top of udp_frames_fuzz.cc and
udp_connection_fuzz.cc. Rerun after a format change:

    python3 tests/fuzz/make_udp_corpus.py
"""
import os

HERE = os.path.dirname(os.path.abspath(__file__))

PADDING, PING, ACK, MAX_DATA, MAX_STREAM_DATA, CLOSE = 0x00, 0x01, 0x02, 0x04, 0x05, 0x06
STREAM, FIN, LEN = 0x10, 0x01, 0x02
DATAGRAM, DLEN = 0x20, 0x01


def varint(v):
    out = bytearray()
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


def ack(largest, delay, first, more=()):
    body = varint(largest) + varint(delay) + varint(len(more)) + varint(first)
    for gap, length in more:
        body += varint(gap) + varint(length)
    return bytes([ACK]) + body


def stream(sid, offset, data, fin=False, explicit=True):
    t = STREAM | (FIN if fin else 0) | (LEN if explicit else 0)
    body = varint(sid) + varint(offset) + (varint(len(data)) if explicit else b"")
    return bytes([t]) + body + data


def datagram(data, explicit=True):
    return bytes([DATAGRAM | (DLEN if explicit else 0)]) + (varint(len(data)) if explicit else b"") + data


def close(code, reason):
    return bytes([CLOSE]) + varint(code) + varint(len(reason)) + reason


def every_frame():
    return (bytes([PING]) + ack(100, 25000, 10, [(3, 5), (0, 0)]) + stream(0, 0, b"hello", False)
            + stream(4, 1000, b"world", True) + datagram(b"dgram") + bytes([MAX_DATA]) + varint(1 << 20)
            + bytes([MAX_STREAM_DATA]) + varint(2) + varint(65536) + close(3, b"bye") + b"\x00" * 4
            + stream(8, 7, b"to the end", explicit=False))


def write(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def frames_corpus():
    t = "udp_frames_fuzz"
    write(t, "every-frame", b"\x00" + every_frame())
    write(t, "every-frame-small-limits", b"\x01" + every_frame())
    write(t, "ack-many-ranges", b"\x02" + ack(1000, 0, 1, [(1, 1)] * 40))
    write(t, "ack-underflow", b"\x00" + ack(5, 0, 1, [(9, 0)]))
    write(t, "stream-lying-length", b"\x00" + bytes([STREAM | LEN]) + varint(1) + varint(0) + varint(99) + b"x")
    write(t, "datagram-to-end", b"\x00" + bytes([PING]) + datagram(b"rest of packet", explicit=False))
    write(t, "close-long-reason", b"\x01" + close(1, b"a reason longer than eight"))


def record(op, arg):
    assert len(arg) < 256
    return bytes([op, len(arg)]) + arg


def packet_record(payload):
    return record(1, payload)


def connection_corpus():
    t = "udp_connection_fuzz"
    # Application traffic exchanged with the well-behaved peer, with time passing.
    script = bytes([0])
    script += record(3, bytes([0]))                      # open a stream
    script += record(3, bytes([1]) + b"hello world")     # send on it
    script += record(3, bytes([6]) + b"from the peer")   # the peer opens a stream and sends
    script += record(4, b"") + record(2, b"\x0a") + record(4, b"") + record(2, b"\x30")
    script += record(3, bytes([3]))                      # read
    script += record(3, bytes([4]) + b"datagram")
    script += record(4, b"") + record(2, b"\x01\x00") + record(4, b"")
    script += record(3, bytes([7])) + record(4, b"") + record(2, b"\x10\x00")
    write(t, "exchange", script)
    write(t, "exchange-small", bytes([2]) + script[1:])
    write(t, "exchange-mtu", bytes([8]) + script[1:])   # path MTU probing on both ends
    # Hand-made packets: every frame, an ACK of nothing sent, a stream beyond the credit.
    write(t, "every-frame", bytes([1]) + packet_record(every_frame()[:250]) + record(2, b"\x40"))
    write(t, "ack-unsent", bytes([0]) + packet_record(ack(7, 0, 0)))
    write(t, "over-credit", bytes([2]) + packet_record(stream(1, 0, b"x" * 100)))
    write(t, "reordered", bytes([0]) + record(5, b"\x05" + bytes([PING])) + packet_record(bytes([PING]))
          + record(5, b"\x01" + bytes([PING])) + record(2, b"\x20"))
    write(t, "garbage", bytes([4]) + record(0, b"\x40\x00" + b"\xff" * 20) + record(0, b"") + record(2, b"\xff\xff"))


if __name__ == "__main__":
    frames_corpus()
    connection_corpus()
