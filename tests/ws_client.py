#!/usr/bin/python3
# SPDX-License-Identifier: MIT
# WebSocket tests of examples/httpd --ws: the python3-websockets client
# (a third-party implementation) for the normal paths, raw sockets for
# the protocol violations. Usage: ws_client.py PORT PATH
import asyncio
import base64
import os
import socket
import struct
import sys

import websockets

port, path = int(sys.argv[1]), sys.argv[2]
url = "ws://127.0.0.1:%d%s" % (port, path)
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what)


async def normal():
    async with websockets.connect(url, max_size=None) as ws:
        await ws.send("hello")
        check(await ws.recv() == "hello", "text echo")
        await ws.send("h\u00e9llo \u2603 \U0001F600")
        check(await ws.recv() == "h\u00e9llo \u2603 \U0001F600", "utf-8 echo")
        blob = os.urandom(300000)
        await ws.send(blob)
        check(await ws.recv() == blob, "300 kB binary echo")
        # a fragmented message (websockets sends an iterable as fragments)
        await ws.send(["frag", "men", "ted"])
        check(await ws.recv() == "fragmented", "fragmented echo")
        pong = await ws.ping(b"are you there")
        await asyncio.wait_for(pong, 5)
        for i in range(200):
            await ws.send("m%d" % i)
        got = [await ws.recv() for _ in range(200)]
        check(got == ["m%d" % i for i in range(200)], "200 messages in order")
        await ws.close(code=4000, reason="bye")
        check(ws.close_code == 4000, "close code echoed: %r" % ws.close_code)


def handshake(extra=b""):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    key = base64.b64encode(os.urandom(16))
    s.sendall(b"GET " + path.encode() + b" HTTP/1.1\r\nHost: x\r\n"
              b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
              b"Sec-WebSocket-Key: " + key + b"\r\n"
              b"Sec-WebSocket-Version: 13\r\n" + extra + b"\r\n")
    buf = b""
    while b"\r\n\r\n" not in buf:
        d = s.recv(4096)
        if not d:
            break
        buf += d
    head, _, rest = buf.partition(b"\r\n\r\n")
    return s, head, rest


def frame(op, payload, fin=True, mask=True, rsv=0):
    b0 = (0x80 if fin else 0) | rsv | op
    n = len(payload)
    if n < 126:
        hdr = struct.pack("!BB", b0, (0x80 if mask else 0) | n)
    elif n < 65536:
        hdr = struct.pack("!BBH", b0, (0x80 if mask else 0) | 126, n)
    else:
        hdr = struct.pack("!BBQ", b0, (0x80 if mask else 0) | 127, n)
    if not mask:
        return hdr + payload
    key = os.urandom(4)
    return hdr + key + bytes(c ^ key[i % 4] for i, c in enumerate(payload))


def close_code_after(data, what):
    s, head, rest = handshake()
    check(head.startswith(b"HTTP/1.1 101"), what + ": upgraded")
    s.sendall(data)
    buf = rest
    try:
        while len(buf) < 4:
            d = s.recv(4096)
            if not d:
                break
            buf += d
    except socket.timeout:
        pass
    s.close()
    if len(buf) >= 4 and buf[0] == 0x88:
        return struct.unpack("!H", buf[2:4])[0]
    return None


def violations():
    cases = [
        (frame(1, b"unmasked", mask=False), 1002, "unmasked client frame"),
        (frame(1, b"x", rsv=0x40), 1002, "reserved bit"),
        (frame(3, b"x"), 1002, "reserved opcode"),
        (frame(9, b"p" * 126), 1002, "control frame over 125 bytes"),
        (frame(9, b"p", fin=False), 1002, "fragmented ping"),
        (frame(0, b"cont"), 1002, "continuation without a start"),
        (frame(1, b"\xff\xfe"), 1007, "invalid UTF-8"),
        (frame(8, struct.pack("!H", 1005)), 1002, "close code 1005 on the wire"),
        (frame(8, b"\x03"), 1002, "one-byte close payload"),
        (frame(2, b"\0" * (1100000)), 1009, "message over 1 MiB"),
    ]
    for data, want, what in cases:
        got = close_code_after(data, what)
        check(got == want, "%s: close code %r, want %d" % (what, got, want))
    # a ping between the fragments of a text message: pong, then the message
    s, head, rest = handshake()
    s.sendall(frame(1, b"ab", fin=False) + frame(9, b"hi") + frame(0, b"cd"))
    buf = rest
    while len(buf) < 10:
        buf += s.recv(4096)
    check(buf[:4] == b"\x8a\x02hi", "pong inside a fragmented message")
    check(buf[4:10] == b"\x81\x04abcd", "the message after the pong")
    s.close()
    # refused handshakes
    s, head, _ = handshake(b"Sec-WebSocket-Version: 8\r\n")
    s.close()
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(b"GET " + path.encode() + b" HTTP/1.1\r\nHost: x\r\n"
              b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
              b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
              b"Sec-WebSocket-Version: 12\r\n\r\n")
    check(s.recv(4096).startswith(b"HTTP/1.1 426"), "version 12: 426")
    s.close()
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(b"GET " + path.encode() + b" HTTP/1.1\r\nHost: x\r\n"
              b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
              b"Sec-WebSocket-Key: short\r\n"
              b"Sec-WebSocket-Version: 13\r\n\r\n")
    check(s.recv(4096).startswith(b"HTTP/1.1 400"), "bad key: 400")
    s.close()


asyncio.run(normal())
violations()
print("ws tests: %d failures" % len(failures))
sys.exit(1 if failures else 0)
