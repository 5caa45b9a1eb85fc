#!/usr/bin/python3
"""Connection churn for perf/soak.sh: for DURATION seconds, RATE rounds per second, each round one REGISTER over
UDP and one over a new TCP connection and a new TLS connection (connect, register, read the 200, close), all
through the edge. Prints one JSON line at the end: counts, the first failures (what happened, when) and how often
UDP needed a retransmission; exits 1 if any registration failed.

usage: soak-churn.py HOST UDP_PORT TLS_PORT DURATION RATE
"""
import json
import socket
import ssl
import sys
import time
import uuid

# How long a TCP or TLS client waits to connect and for its answer. A phone waits up to Timer F (64 x T1, 32 s) and
# never retransmits over a reliable transport; 10 s still fails any registration the edge loses, without failing
# the run when a loaded machine (CI runs every suite at once on 2 cores) stalls a process for a few seconds.
STREAM_TIMEOUT_S = 10


# The address a phone behind a NAT writes in its Via and Contact: its private one, never the edge's. A client here
# shares the edge's IP (loopback), and a loopback sent-by whose ephemeral TCP port happened to equal the edge's
# upstream-facing UDP port (or one a reload retired) named the edge itself: a Via of ours from the public side, a
# loop, answered 482 (seen once in CI, 1 registration of 600). The edge answers by the source address all the same
# (received and rport, or the connection).
PHONE_PRIVATE_HOST = "192.168.0.2"


def register(transport, local, edge_host, edge_port, number):
    call_id = uuid.uuid4().hex
    host, port = PHONE_PRIVATE_HOST, local[1]
    return (
        f"REGISTER sip:{edge_host} SIP/2.0\r\n"
        f"Via: SIP/2.0/{transport} {host}:{port};branch=z9hG4bK{call_id[:16]};rport\r\n"
        f"Max-Forwards: 70\r\n"
        f"From: <sip:churn{number}@{edge_host}>;tag={call_id[16:24]}\r\n"
        f"To: <sip:churn{number}@{edge_host}>\r\n"
        f"Call-ID: {call_id}\r\n"
        f"CSeq: 1 REGISTER\r\n"
        f"Contact: <sip:churn{number}@{host}:{port};transport={transport.lower()}>\r\n"
        f"Expires: 60\r\n"
        f"User-Agent: sip-edge soak churn\r\n"
        f"Content-Length: 0\r\n\r\n"
    ).encode()


def answered_ok(data):
    return data.startswith(b"SIP/2.0 200 ")


def first_line(data):
    return data.split(b"\r\n", 1)[0]


class NotAnswered(Exception):
    """A registration that got no 200: why, for the soak's summary (a timeout, an early close or another status)."""


# Each registration returns the retransmissions it needed (0 over a stream) or raises NotAnswered.
def over_udp(host, port, number):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(2)
        sock.bind((host, 0))
        for attempt in range(3):  # UDP: the client retransmits, as a phone would
            sock.sendto(register("UDP", sock.getsockname(), host, port, number), (host, port))
            try:
                data = sock.recv(4096)
            except socket.timeout:
                continue
            if not answered_ok(data):
                raise NotAnswered(f"answered {first_line(data)!r}")
            return attempt
        raise NotAnswered("no answer to 3 sends, 2 s apart")


def over_stream(host, port, number, context):
    with socket.create_connection((host, port), timeout=STREAM_TIMEOUT_S) as raw:
        sock = context.wrap_socket(raw) if context else raw
        sock.sendall(register("TLS" if context else "TCP", sock.getsockname(), host, port, number))
        data = b""
        while b"\r\n\r\n" not in data:
            try:
                chunk = sock.recv(4096)
            except socket.timeout:
                raise NotAnswered(f"no answer in {STREAM_TIMEOUT_S} s (got {len(data)} bytes)")
            if not chunk:
                raise NotAnswered(f"closed by the edge after {len(data)} bytes")
            data += chunk
        if not answered_ok(data):
            raise NotAnswered(f"answered {first_line(data)!r}")
        if context:
            try:
                sock.unwrap()
            except (ssl.SSLError, OSError):
                pass
        return 0


def main():
    host, udp_port, tls_port, duration, rate = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # the soak's own self-signed certificate, renewed on every reload
    counts = {kind: {"ok": 0, "failed": 0} for kind in ("udp", "tcp", "tls")}
    errors = []
    udp_retransmissions = 0
    started = time.monotonic()
    number = 0
    while time.monotonic() - started < duration:
        round_start = time.monotonic()
        number += 1
        for kind, attempt in (("udp", lambda: over_udp(host, udp_port, number)),
                              ("tcp", lambda: over_stream(host, udp_port, number, None)),
                              ("tls", lambda: over_stream(host, tls_port, number, context))):
            try:
                udp_retransmissions += attempt()
                counts[kind]["ok"] += 1
            except (OSError, ssl.SSLError, NotAnswered) as error:
                counts[kind]["failed"] += 1
                if len(errors) < 10:
                    errors.append(f"{kind} #{number} at {time.monotonic() - started:.1f} s: "
                                  f"{type(error).__name__}: {error}")
        time.sleep(max(0.0, 1.0 / rate - (time.monotonic() - round_start)))
    print(json.dumps({"churn": counts, "errors": errors, "udp_retransmissions": udp_retransmissions}), flush=True)
    sys.exit(1 if any(c["failed"] for c in counts.values()) else 0)


if __name__ == "__main__":
    main()
