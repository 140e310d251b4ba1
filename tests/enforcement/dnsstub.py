# DNS stub for tests/enforcement/squid.rs. Standard library only.
# Provenance: adapted from the adversarial review's squid/dnsstub2.py (F7/F8/F16 repro).
#
#   dnsstub.py ADDR TABLE LOG
#       Answer UDP queries on ADDR:53 from TABLE, a JSON object
#       {"name": ["ip", ...]}: A queries get the table's IPv4 addresses, AAAA
#       queries its IPv6 ones, in table order, TTL 0; names not in the table
#       get NXDOMAIN. Prints READY once bound; logs one line per query to LOG.
import json
import socket
import struct
import sys


def main():
    table = {k.lower(): v for k, v in json.loads(sys.argv[2]).items()}
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((sys.argv[1], 53))
    log = open(sys.argv[3], "a", buffering=1)
    sys.stdout.write("READY\n")
    sys.stdout.flush()
    while True:
        data, addr = s.recvfrom(512)
        try:
            tid, _flags, _qd = struct.unpack(">HHH", data[:6])
            i = 12
            labels = []
            while data[i]:
                n = data[i]
                labels.append(data[i + 1:i + 1 + n].decode("ascii", "replace"))
                i += 1 + n
            qtype, _qclass = struct.unpack(">HH", data[i + 1:i + 5])
        except (IndexError, struct.error):
            continue
        question = data[12:i + 5]
        name = ".".join(labels).lower()
        rcode = 0 if name in table else 3
        ips = []
        if name in table and qtype in (1, 28):
            want_v6 = qtype == 28
            ips = [ip for ip in table[name] if (":" in ip) == want_v6]
        answers = b""
        for ip in ips:
            if ":" in ip:
                rdata = socket.inet_pton(socket.AF_INET6, ip)
                answers += b"\xc0\x0c" + struct.pack(">HHIH", 28, 1, 0, 16) + rdata
            else:
                rdata = socket.inet_aton(ip)
                answers += b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, 0, 4) + rdata
        log.write(f"{name} type={qtype} rcode={rcode} -> {ips}\n")
        header = struct.pack(">HHHHHH", tid, 0x8180 | rcode, 1, len(ips), 0, 0)
        s.sendto(header + question + answers, addr)


main()
