#!/usr/bin/env python3
"""Upstream servers for tests/run_net.rs: HTTP on every ADDR:PORT given with
--tcp, a UDP sink on every ADDR:PORT given with --udp. Every request or
datagram is one line in LOG ("HIT addr:port /path" or "UDP addr:port data");
"READY" is written once every socket is bound. GET /robots.txt is 404; a path
naming a file below --www is served as HTML; anything else answers
"HIT addr:port /path".

usage: upstream.py LOG [--www DIR] [--tcp ADDR:PORT]... [--udp ADDR:PORT]...
"""
import os, socket, sys, threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

log_path = sys.argv[1]
args = sys.argv[2:]
www, tcp, udp = None, [], []
while args:
    flag, value = args[0], args[1]
    args = args[2:]
    if flag == "--www":
        www = value
    elif flag == "--tcp":
        tcp.append(value)
    elif flag == "--udp":
        udp.append(value)
lock = threading.Lock()


def note(line):
    with lock, open(log_path, "a") as f:
        f.write(line + "\n")


def split(spec):
    host, port = spec.rsplit(":", 1)
    return host.strip("[]"), int(port)


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        here = "%s:%d" % self.server.server_address[:2]
        note("HIT %s %s" % (here, self.path))
        if self.path == "/robots.txt":
            self.send_response(404)
            self.end_headers()
            return
        page = os.path.join(www, self.path.lstrip("/")) if www else None
        if page and os.path.isfile(page):
            body, kind = open(page, "rb").read(), "text/html"
        else:
            body, kind = ("HIT %s %s\n" % (here, self.path)).encode(), "text/plain"
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


class Server(ThreadingHTTPServer):
    # HTTPServer.server_bind looks up its own name (getfqdn): with a lab
    # resolver that never answers, that would stall the start.
    def server_bind(self):
        import socketserver
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = "upstream", self.server_address[1]


class V6Server(Server):
    address_family = socket.AF_INET6


for spec in tcp:
    host, port = split(spec)
    cls = V6Server if ":" in host else Server
    srv = cls((host, port), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()


def sink(sock, here):
    while True:
        data, _ = sock.recvfrom(2048)
        note("UDP %s %s" % (here, data.decode("latin-1").strip()))


for spec in udp:
    host, port = split(spec)
    s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((host, port))
    threading.Thread(target=sink, args=(s, spec), daemon=True).start()

note("READY")
threading.Event().wait()
