#!/usr/bin/python3
"""Hostile or broken clients for FaultsUnderLoadTests, all against one HOST:PORT, for HOLD seconds:

  silent       COUNT connections that never send a byte
  stalled-tls  COUNT connections that send the first bytes of a TLS ClientHello, then nothing
  slowloris    COUNT connections that send a REGISTER one byte per second (add "tls" to do it inside TLS)
  garbage      COUNT connections, half sending binary garbage and a blank line, half silent (the admin port)

Prints one JSON line: how many were opened, how many the server closed, and after how long (min/median/max
seconds from open). Exit 0 unless the connections could not be opened.

Connection i comes from SOURCE_PREFIX + (1 + i % SOURCE_COUNT), e.g. 127.0.1.1 ... 127.0.1.10: several hosts, as
attackers are, each under the edge's per-source connection rate.

usage: fault-clients.py MODE HOST PORT COUNT HOLD SOURCE_PREFIX SOURCE_COUNT [tls]
"""
import json
import resource
import selectors
import socket
import ssl
import sys
import time

REGISTER = (b"REGISTER sip:sipedge.test SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:9;branch=z9hG4bKslow\r\n"
            b"Max-Forwards: 70\r\nFrom: <sip:slow@sipedge.test>;tag=1\r\nTo: <sip:slow@sipedge.test>\r\n"
            b"Call-ID: slowloris\r\nCSeq: 1 REGISTER\r\nContact: <sip:slow@127.0.0.1:9>\r\nContent-Length: 0\r\n\r\n")
# A TLS record header announcing a 512-byte handshake record, and the start of a ClientHello.
PARTIAL_HELLO = bytes([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xFC, 0x03, 0x03])


def main():
    mode, host, port, count, hold = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
    source_prefix, source_count = sys.argv[6], int(sys.argv[7])
    use_tls = len(sys.argv) > 8 and sys.argv[8] == "tls"
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    selector = selectors.DefaultSelector()
    opened = {}
    closed = {}
    for number in range(count):
        source = f"{source_prefix}{1 + number % source_count}"
        sock = socket.create_connection((host, port), timeout=5, source_address=(source, 0))
        if mode == "slowloris" and use_tls:
            sock = context.wrap_socket(sock)
        if mode == "stalled-tls":
            sock.sendall(PARTIAL_HELLO)
        if mode == "garbage" and number % 2 == 0:
            sock.sendall(b"\x00\xff\xfe GARBAGE \x01\x02\r\n\r\n")
        sock.setblocking(False)
        opened[sock] = time.monotonic()
        selector.register(sock, selectors.EVENT_READ)
    print(f"opened {len(opened)}", file=sys.stderr, flush=True)
    started = time.monotonic()
    position = 0
    next_byte = started
    while time.monotonic() - started < hold and len(closed) < len(opened):
        now = time.monotonic()
        if mode == "slowloris" and now >= next_byte and position < len(REGISTER):
            for sock in opened:
                if sock not in closed:
                    try:
                        sock.send(REGISTER[position:position + 1])
                    except (ssl.SSLWantWriteError, ssl.SSLWantReadError, BlockingIOError):
                        pass
                    except OSError:
                        closed[sock] = now - opened[sock]
            position += 1
            next_byte += 1.0
        for key, _ in selector.select(timeout=0.2):
            sock = key.fileobj
            try:
                data = sock.recv(4096)
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError):
                continue
            except OSError:
                data = b""
            if not data:
                closed[sock] = time.monotonic() - opened[sock]
                selector.unregister(sock)
    times = sorted(closed.values())
    summary = {"mode": mode, "opened": len(opened), "closed_by_server": len(closed),
               "close_after_s": [round(times[0], 2), round(times[len(times) // 2], 2), round(times[-1], 2)] if times else []}
    print(json.dumps(summary), flush=True)
    for sock in opened:
        sock.close()


if __name__ == "__main__":
    main()
