#!/usr/bin/python3
"""A WebRTC-style SIP phone over WebSocket (RFC 7118) for SIPEdge's tests.

The WebSocket is Python's `websockets` library (Debian python3-websockets), the same protocol a browser speaks:
masked client frames, the `sip` subprotocol, pings answered by the library. The SIP on top is what SIP.js and
JsSIP send: Via and Contact with a random `.invalid` host (RFC 7118 §5.2), transport WS/WSS.

  ws-phone.py URL --user alice --domain sipedge.test [--ca CA.pem] [--hangup callee|caller] [--timeout 20]

Registers, waits for one INVITE, answers it (180, 200 with SDP), takes the ACK, then either waits for the
caller's BYE (--hangup caller) or sends BYE itself along the route set (--hangup callee) and waits for its 200.
Prints one line per SIP message and exits 0 when the whole exchange happened, 1 otherwise.
"""
import argparse
import asyncio
import random
import ssl
import string
import sys

import websockets


def token(n=10):
    return "".join(random.choice(string.ascii_lowercase + string.digits) for _ in range(n))


def parse(message):
    head, _, body = message.partition("\r\n\r\n")
    lines = head.split("\r\n")
    headers = []
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers.append((name.strip(), value.strip()))
    return lines[0], headers, body


def values(headers, name):
    short = {"via": "v", "from": "f", "to": "t", "call-id": "i", "contact": "m", "content-length": "l"}
    wanted = {name.lower(), short.get(name.lower(), name.lower())}
    out = []
    for key, value in headers:
        if key.lower() in wanted:
            out.extend(part.strip() for part in split_commas(value))
    return out


def split_commas(value):
    parts, depth, quoted, current = [], 0, False, ""
    for ch in value:
        if ch == '"':
            quoted = not quoted
        elif ch == "<" and not quoted:
            depth += 1
        elif ch == ">" and not quoted:
            depth -= 1
        if ch == "," and depth == 0 and not quoted:
            parts.append(current)
            current = ""
        else:
            current += ch
    parts.append(current)
    return parts


def uri_of(name_addr):
    if "<" in name_addr:
        return name_addr[name_addr.index("<") + 1:name_addr.index(">")]
    return name_addr.split(";")[0]


class Phone:
    def __init__(self, socket, args):
        self.socket = socket
        self.args = args
        self.transport = "WSS" if args.url.startswith("wss:") else "WS"
        self.host = token() + ".invalid"
        self.contact = f"<sip:{args.user}@{self.host};transport={self.transport.lower()}>"
        self.tag = token()
        self.pending = []

    async def send(self, text):
        print(">>> " + text.split("\r\n")[0], flush=True)
        await self.socket.send(text)

    async def receive(self):
        if self.pending:
            return self.pending.pop(0)
        message = await self.socket.recv()
        if isinstance(message, bytes):
            message = message.decode()
        print("<<< " + message.split("\r\n")[0], flush=True)
        return message

    async def expect_response(self, method, status):
        while True:
            first, headers, body = parse(await self.receive())
            if not first.startswith("SIP/2.0 "):
                self.pending.append("\r\n".join([first] + [f"{k}: {v}" for k, v in headers]) + "\r\n\r\n" + body)
                continue
            code = int(first.split()[1])
            cseq = values(headers, "CSeq")[0]
            if not cseq.endswith(method) or code < 200:
                continue
            if code != status:
                raise RuntimeError(f"{method} got {first}")
            return headers

    async def register(self):
        call_id = token(16)
        await self.send(
            f"REGISTER sip:{self.args.domain} SIP/2.0\r\n"
            f"Via: SIP/2.0/{self.transport} {self.host};branch=z9hG4bK{token()}\r\n"
            f"Max-Forwards: 70\r\n"
            f"To: <sip:{self.args.user}@{self.args.domain}>\r\n"
            f"From: <sip:{self.args.user}@{self.args.domain}>;tag={self.tag}\r\n"
            f"Call-ID: {call_id}\r\nCSeq: 1 REGISTER\r\n"
            f"Contact: {self.contact};expires=600\r\n"
            f"Supported: path, outbound\r\nUser-Agent: ws-phone (python-websockets)\r\nContent-Length: 0\r\n\r\n")
        await self.expect_response("REGISTER", 200)

    async def answer_call(self):
        while True:
            first, headers, body = parse(await self.receive())
            if first.startswith("INVITE "):
                break
        self.invite_headers = headers
        copied = "".join(f"Via: {v}\r\n" for v in values(headers, "Via"))
        copied += "".join(f"Record-Route: {r}\r\n" for r in values(headers, "Record-Route"))
        to = values(headers, "To")[0] + f";tag={self.tag}"
        common = (f"From: {values(headers, 'From')[0]}\r\nTo: {to}\r\nCall-ID: {values(headers, 'Call-ID')[0]}\r\n"
                  f"CSeq: {values(headers, 'CSeq')[0]}\r\n")
        await self.send(f"SIP/2.0 180 Ringing\r\n{copied}{common}Contact: {self.contact}\r\nContent-Length: 0\r\n\r\n")
        sdp = (f"v=0\r\no=alice 1 1 IN IP4 {self.host}\r\ns=-\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\n"
               f"m=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=rtpmap:0 PCMU/8000\r\n")
        await self.send(f"SIP/2.0 200 OK\r\n{copied}{common}Contact: {self.contact}\r\n"
                        f"Content-Type: application/sdp\r\nContent-Length: {len(sdp)}\r\n\r\n{sdp}")
        while True:
            first, headers, _ = parse(await self.receive())
            if first.startswith("ACK "):
                return

    async def caller_hangs_up(self):
        while True:
            first, headers, _ = parse(await self.receive())
            if first.startswith("BYE "):
                break
        copied = "".join(f"Via: {v}\r\n" for v in values(headers, "Via"))
        await self.send(f"SIP/2.0 200 OK\r\n{copied}From: {values(headers, 'From')[0]}\r\nTo: {values(headers, 'To')[0]}\r\n"
                        f"Call-ID: {values(headers, 'Call-ID')[0]}\r\nCSeq: {values(headers, 'CSeq')[0]}\r\n"
                        f"Content-Length: 0\r\n\r\n")

    async def callee_hangs_up(self):
        headers = self.invite_headers
        routes = "".join(f"Route: {r}\r\n" for r in values(headers, "Record-Route"))
        target = uri_of(values(headers, "Contact")[0])
        caller = values(headers, "From")[0]
        await self.send(
            f"BYE {target} SIP/2.0\r\nVia: SIP/2.0/{self.transport} {self.host};branch=z9hG4bK{token()}\r\n"
            f"Max-Forwards: 70\r\n{routes}From: {values(headers, 'To')[0]};tag={self.tag}\r\nTo: {caller}\r\n"
            f"Call-ID: {values(headers, 'Call-ID')[0]}\r\nCSeq: 1 BYE\r\nContent-Length: 0\r\n\r\n")
        await self.expect_response("BYE", 200)


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--user", default="alice")
    parser.add_argument("--domain", default="sipedge.test")
    parser.add_argument("--ca")
    parser.add_argument("--hangup", choices=["caller", "callee"], default="caller")
    parser.add_argument("--register-only", action="store_true")
    parser.add_argument("--timeout", type=float, default=20)
    args = parser.parse_args()
    context = None
    if args.url.startswith("wss:"):
        context = ssl.create_default_context(cafile=args.ca)
        context.check_hostname = False
    async with websockets.connect(args.url, subprotocols=["sip"], ssl=context, origin="https://phone.sipedge.test",
                                  open_timeout=5) as socket:
        print(f"--- open, subprotocol {socket.subprotocol}", flush=True)
        phone = Phone(socket, args)
        await phone.register()
        print("--- registered", flush=True)
        if args.register_only:
            return
        await phone.answer_call()
        print("--- answered", flush=True)
        if args.hangup == "caller":
            await phone.caller_hangs_up()
        else:
            await phone.callee_hangs_up()
        print("--- hung up", flush=True)


try:
    asyncio.run(asyncio.wait_for(main(), timeout=float(sys.argv[sys.argv.index("--timeout") + 1])
                                 if "--timeout" in sys.argv else 20))
except Exception as error:  # noqa: BLE001 - any failure is the test's failure, printed for its log
    print(f"--- failed: {type(error).__name__}: {error}", flush=True)
    sys.exit(1)
