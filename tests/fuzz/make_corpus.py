#!/usr/bin/env python3
"""Writes the seed corpora of the wire fuzz targets (tests/fuzz/corpus/<target>/).

The frames are built here from docs/protocol.md, independently of the C++ encoder. Each seed
starts with the target's two option bytes (see the comments at the top of
frame_decoder_fuzz.cc and handshake_fuzz.cc). Rerun after a protocol change:

    python3 tests/fuzz/make_corpus.py
"""
import hashlib
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
PREFACE = b"SLIP"

HELLO, WELCOME, PING, PONG, GOAWAY, ERROR, CREDIT = 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07
DATA, RESET, SUB, UNSUB, PUB, MSG, PUBSUB_ERROR = 0x10, 0x11, 0x20, 0x21, 0x22, 0x23, 0x24
CALL, RESPONSE, TRAILERS, CANCEL, LOG_PUBLISH, LOG_ACK = 0x30, 0x31, 0x32, 0x33, 0x40, 0x41
STREAM_REQUEST, STREAM_RESPONSE, STREAM_MSG = 0x42, 0x43, 0x44


def varint(v):
    out = bytearray()
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


def string(s):
    if isinstance(s, str):
        s = s.encode()
    return varint(len(s)) + s


def metadata(pairs):
    return varint(len(pairs)) + b"".join(string(k) + string(v) for k, v in pairs)


def frame(ftype, flags, body):
    return bytes([ftype, flags]) + varint(len(body)) + body


def tlv_varint(key, v):
    value = varint(v)
    return varint(key) + varint(len(value)) + value


def tlv_str(key, s):
    return varint(key) + string(s)


def hello(min_v=1, max_v=1, codecs=6, max_frame=1 << 20, name="fuzz", token=None, require_enc=False, extra=b""):
    body = bytes([min_v, max_v])
    if codecs:
        body += tlv_varint(1, codecs)
    if require_enc:
        body += tlv_varint(2, 1)
    if max_frame:
        body += tlv_varint(3, max_frame)
    if token:
        body += tlv_str(4, token)
    if name:
        body += tlv_str(7, name)
    body += tlv_varint(8, 5000) + tlv_varint(9, 262144) + extra
    return frame(HELLO, 0, body)


def welcome(version=1, codecs=6, max_frame=1 << 20, extra=b""):
    body = bytes([version])
    if codecs:
        body += tlv_varint(1, codecs)
    if max_frame:
        body += tlv_varint(3, max_frame)
    body += tlv_str(7, "slipd") + tlv_varint(8, 5000) + tlv_varint(9, 262144)
    body += tlv_str(11, "s1") + tlv_varint(12, 7) + extra
    return frame(WELCOME, 0, body)


def every_frame():
    """One valid frame of each type, in type order, plus an extension frame."""
    return [
        hello(token="tok"),
        welcome(),
        frame(PING, 0, struct.pack(">Q", 0x0102030405060708)),
        frame(PONG, 0, struct.pack(">Q", 42)),
        frame(GOAWAY, 0, varint(7) + varint(0) + b"bye"),
        frame(ERROR, 0, varint(0) + varint(16) + b"bad token"),
        frame(CREDIT, 0, varint(0) + varint(65536)),
        frame(DATA, 0x04 | 0x01 | (1 << 4), varint(5) + bytes(range(64))),
        frame(RESET, 0, varint(9) + varint(1) + b"gone"),
        frame(SUB, 0, varint(1) + string("orders.*") + string("workers")),
        frame(UNSUB, 0, varint(1) + varint(10)),
        frame(PUB, 0x03, string("a.b") + string("r") + metadata([("k", "v")]) + b"hi"),
        frame(MSG, 0x02, varint(1) + string("orders.new") + metadata([]) + b"hi"),
        frame(CALL, 0, varint(1) + string("/p.S/M") + varint(1000000) + metadata([("authorization", "x")])),
        frame(RESPONSE, 0, varint(1) + metadata([("content-type", "proto")])),
        frame(TRAILERS, 0, varint(1) + varint(0) + string("") + metadata([])),
        frame(CANCEL, 0, varint(1) + varint(4)),
        frame(LOG_PUBLISH, 0x02, varint(9) + string("log") + metadata([("key", "1")]) + b"abc"),
        frame(LOG_ACK, 0, varint(9) + varint(0) + varint(1000)),
        frame(0xF3, 0x55, b"extension"),
        frame(PUBSUB_ERROR, 0, bytes([PUB]) + varint(0) + varint(7) + string("x.y") + b"denied"),
        frame(PUBSUB_ERROR, 0, bytes([SUB]) + varint(2) + varint(7) + string(">") + b"no"),
        frame(STREAM_REQUEST, 0, varint(5) + bytes([1]) + metadata([("name", "S"), ("subjects", "a.>")])),
        frame(STREAM_RESPONSE, 0, varint(5) + varint(0) + string("") + metadata([("messages", "12")])),
        frame(STREAM_MSG, 0x02, varint(5) + varint(300) + varint(1 << 60) + varint(1) + string("a.b")
              + metadata([("Slip-Msg-Id", "x")]) + b"payload"),
        frame(STREAM_REQUEST, 0, varint(6) + bytes([7]) + metadata([("stream", "S"), ("name", "C"), ("batch", "10"),
                                                                    ("expires_ms", "500")])),
        frame(STREAM_REQUEST, 0, varint(7) + bytes([8]) + metadata([("stream", "S"), ("name", "C"),
                                                                    ("seqs", "1,2,3"), ("kind", "nak")])),
        frame(STREAM_MSG, 0, varint(6) + varint(3) + varint(1) + varint(2) + string("a") + b"x"),
    ]


def broken_frames():
    """Each a stream that the decoder or parse_frame must reject in its own way."""
    return [
        frame(0x50, 0, b"x"),                                        # reserved type
        bytes([DATA, 0]) + b"\x80\x80\x80\x80\x01" + b"\x01",          # 5-byte length varint
        bytes([DATA, 0]) + varint(1 << 27),                           # length over max_frame_size
        frame(CREDIT, 0, varint(1)),                                  # truncated field
        frame(CREDIT, 0, varint(1) + varint(1) + b"zz"),              # trailing bytes
        frame(CREDIT, 0x01, varint(1) + varint(1)),                   # reserved flag
        frame(CREDIT, 0, varint(1) + varint(0)),                      # increment 0
        frame(DATA, 0, varint(0) + b"x"),                             # stream id 0
        frame(DATA, 0x08, varint(1) + b"x"),                          # reserved DATA bit
        frame(DATA, 0xC0, varint(1) + b"x"),                          # codec 3
        frame(SUB, 0, varint(1) + string("s" * 2000) + string("")),   # name over limit
        frame(PUB, 0, string("") + b"x"),                             # empty subject
        frame(CALL, 0, varint(1) + string("/m") + varint(0) + varint(65) + (string("k") + string("v")) * 65),
        frame(RESPONSE, 0, varint(1) + varint(0xFFFFFFFF) + string("k") + string("v")),  # lying count
        hello(min_v=3, max_v=2),                                      # bad version range
        hello(extra=tlv_str(7, "again")),                             # duplicate TLV
        frame(HELLO, 0, b"\x01\x01" + varint(1) + varint(5000) + b"x"),  # TLV runs past the body
        frame(PUBSUB_ERROR, 0, bytes([UNSUB]) + varint(1) + varint(7) + string("a")),  # op not SUB or PUB
        frame(PUBSUB_ERROR, 0, bytes([PUB]) + varint(0) + varint(7) + varint(9) + b"a"),  # subject truncated
        frame(STREAM_REQUEST, 0, varint(1) + bytes([0x7F]) + metadata([])),  # unknown op
        frame(STREAM_MSG, 0x01, varint(1) + varint(1) + varint(1) + varint(0) + string("a")),  # reserved flag
    ]


def write(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def frame_decoder_corpus():
    t = "frame_decoder_fuzz"
    frames = every_frame()
    stream = b"".join(frames)
    # option byte: bit 0 preface, bits 1-2 limits profile; second byte: split seed
    write(t, "all-frames-preface", bytes([0x01, 0x00]) + PREFACE + stream)
    write(t, "all-frames-split", bytes([0x00, 0x07]) + stream)
    write(t, "all-frames-bytewise", bytes([0x00, 0x01]) + stream)
    write(t, "all-frames-small-limits", bytes([0x02, 0x11]) + stream)
    write(t, "all-frames-tiny-limits", bytes([0x04, 0x00]) + stream)
    write(t, "all-frames-no-limits", bytes([0x06, 0x23]) + stream)
    for i, f in enumerate(frames):
        write(t, "frame-%02x-%02d" % (f[0], i), bytes([0x00, 0x00]) + f)
    for i, f in enumerate(broken_frames()):
        write(t, "broken-%02d" % i, bytes([0x00, 0x00]) + f)
    write(t, "bad-preface", bytes([0x01, 0x00]) + b"GET / HTTP/1.1\r\n\r\n")
    big = frame(DATA, 0x02 | (2 << 6), varint(300) + bytes(range(256)) * 3)
    write(t, "big-data-split", bytes([0x00, 0x3C]) + big + frames[2])


def handshake_corpus():
    t = "handshake_fuzz"
    # mode 0 / 3: bytes from a client into a server
    client = PREFACE + hello(token="tok")
    write(t, "server-hello", bytes([0x00, 0x00]) + client)
    write(t, "server-hello-answered", bytes([0x03, 0x05]) + client)
    write(t, "server-hello-pipelined", bytes([0x03, 0x00]) + client + every_frame()[9] + every_frame()[11])
    write(t, "server-hello-bytewise", bytes([0x00, 0x01]) + client)
    write(t, "server-bad-version", bytes([0x00, 0x00]) + PREFACE + hello(min_v=2, max_v=3))
    write(t, "server-require-encryption", bytes([0x00, 0x00]) + PREFACE + hello(require_enc=True))
    write(t, "server-require-encryption-tls", bytes([0x07, 0x00]) + PREFACE + hello(require_enc=True))
    write(t, "server-auth-rejected", bytes([0x08, 0x00]) + PREFACE + hello(token="bad"))
    write(t, "server-small-frame", bytes([0x00, 0x00]) + PREFACE + hello(max_frame=100))
    write(t, "server-small-limits", bytes([0x13, 0x00]) + client)
    write(t, "server-not-hello", bytes([0x00, 0x00]) + PREFACE + every_frame()[2])
    write(t, "server-garbage", bytes([0x00, 0x00]) + b"\x16\x03\x01\x02\x00")
    write(t, "server-dup-tlv", bytes([0x00, 0x00]) + PREFACE + hello(extra=tlv_str(7, "x")))
    # mode 1: bytes from a server into a client
    write(t, "client-welcome", bytes([0x01, 0x00]) + PREFACE + welcome())
    write(t, "client-welcome-split", bytes([0x01, 0x09]) + PREFACE + welcome() + every_frame()[2])
    write(t, "client-refused", bytes([0x01, 0x00]) + PREFACE + every_frame()[5])
    write(t, "client-version-2", bytes([0x01, 0x00]) + PREFACE + welcome(version=2))
    write(t, "client-codec-not-offered", bytes([0x05, 0x00]) + PREFACE + welcome(codecs=4))
    write(t, "client-small-frame", bytes([0x01, 0x00]) + PREFACE + welcome(max_frame=10))
    write(t, "client-not-welcome", bytes([0x01, 0x00]) + PREFACE + every_frame()[3])
    # mode 2: a client config
    def cfg(codecs, flags, max_frame, *strings):
        out = bytes([codecs, flags]) + struct.pack("<I", max_frame)
        for s in strings:
            out += bytes([len(s)]) + s
        return out
    write(t, "pair-default", bytes([0x02, 0x00]) + cfg(6, 0, 0, b"client", b"", b"alice", b"pw"))
    write(t, "pair-token-bad", bytes([0x0A, 0x03]) + cfg(2, 0, 65536, b"c", b"bad"))
    write(t, "pair-encrypted", bytes([0x06, 0x00]) + cfg(4, 1, 2048, b"tls-client"))
    write(t, "pair-plain-refused", bytes([0x02, 0x00]) + cfg(4, 1, 0, b"x"))
    write(t, "pair-tiny-frame", bytes([0x02, 0x00]) + cfg(0xFF, 0, 512, b"y"))


def main():
    for target in ("frame_decoder_fuzz", "handshake_fuzz"):
        d = os.path.join(HERE, "corpus", target)
        if os.path.isdir(d):
            for name in os.listdir(d):
                os.remove(os.path.join(d, name))
    frame_decoder_corpus()
    handshake_corpus()
    for target in ("frame_decoder_fuzz", "handshake_fuzz"):
        d = os.path.join(HERE, "corpus", target)
        files = sorted(os.listdir(d))
        digest = hashlib.sha1(b"".join(open(os.path.join(d, f), "rb").read() for f in files)).hexdigest()[:12]
        print("%s: %d seeds (%s)" % (target, len(files), digest))


if __name__ == "__main__":
    main()
