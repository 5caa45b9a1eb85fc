#!/usr/bin/env python3
"""Closed-loop SIP clients for perf/closed-loop.sh: CLIENTS UDP sockets, each with one OPTIONS in flight through the
proxy, sending the next as soon as the answer arrives, for SECONDS. Prints exchanges per second and the median and
90th-percentile round trip. Loopback only; bounded in time and in count (200,000 exchanges)."""
import selectors
import socket
import sys
import time

seconds, clients, proxy_port, core_port, first_client_port = float(sys.argv[1]), int(sys.argv[2]), *map(int, sys.argv[3:6])
proxy = ("127.0.0.1", proxy_port)


def options(client: int, sequence: int) -> bytes:
    port = first_client_port + client
    return (f"OPTIONS sip:core@127.0.0.1:{core_port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-cl{client}x{sequence};rport\r\n"
            f"Max-Forwards: 70\r\nFrom: <sip:client{client}@127.0.0.1>;tag=cl{client}\r\n"
            f"To: <sip:core@127.0.0.1>\r\nCall-ID: cl{client}-{sequence}@127.0.0.1\r\n"
            f"CSeq: {sequence} OPTIONS\r\nContent-Length: 0\r\n\r\n").encode()


selector = selectors.DefaultSelector()
sent_at, round_trips, sequence, lost = {}, [], 0, 0
for client in range(clients):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", first_client_port + client))
    sock.setblocking(False)
    selector.register(sock, selectors.EVENT_READ, client)
    sequence += 1
    sent_at[client] = time.perf_counter()
    sock.sendto(options(client, sequence), proxy)
end = time.monotonic() + seconds
while time.monotonic() < end and len(round_trips) < 200_000:
    ready = selector.select(0.5)
    if not ready:  # an answer lost: send again on every socket so the loop goes on, and count it
        lost += 1
        for key in selector.get_map().values():
            sent_at[key.data] = time.perf_counter()
            key.fileobj.sendto(options(key.data, sequence), proxy)
        continue
    for key, _ in ready:
        key.fileobj.recvfrom(4096)
        round_trips.append(time.perf_counter() - sent_at[key.data])
        sequence += 1
        sent_at[key.data] = time.perf_counter()
        key.fileobj.sendto(options(key.data, sequence), proxy)
round_trips.sort()
count = len(round_trips)
if count == 0:
    sys.exit("closed-loop-client: no answer through the proxy")
print(f"{count / seconds:.0f} {round_trips[count // 2] * 1e6:.0f} {round_trips[count * 9 // 10] * 1e6:.0f} {lost}")
