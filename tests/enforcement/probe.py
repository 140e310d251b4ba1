# Probe helper for tests/enforcement.rs. Standard library only (python3 >= 3.7).
#
#   probe.py serve LOG tcp:ADDR:PORT... udp:ADDR:PORT...
#       Listen on every endpoint, print READY once all are bound, then log one
#       JSON line per connection (with the local address it reached, so
#       wildcard listeners work) or datagram to LOG (flushed BEFORE replying, so
#       a client that got the reply can trust the log) and answer TCP with
#       "HTTP/1.0 200 OK ... UPSTREAM <addr> <port>".
#   probe.py connect TIMEOUT JSON
#       JSON is a list of [proto, host, port, token]; all probes run at once;
#       prints a JSON list of {"ok", "reply", "err"} in the same order.
#       proto "unix" is an abstract socket name, "unixpath" a socket file and
#       "unixcred" a socket file to which the client claims uid/gid 0 with
#       SCM_CREDENTIALS (the kernel must refuse the claim).
#   probe.py facts JSON
#       Run inside a sandbox: report identity, capabilities, environment, pids,
#       and the outcome of the requested reads, writes, remounts, connects and
#       commands as one JSON object; on request also every visible
#       /proc/PID/environ and cmdline, writes to sysctl-like files, and a scan
#       of pid 1's memory (PTRACE_ATTACH, then /proc/1/mem) for tokens.
#
# ADDR may be an IPv6 literal in brackets: tcp:[2a00:cafe::2]:443. A listener
# unixpath:PATH:0 serves a socket file (mode 0666) and logs the client's
# SO_PEERCRED and SCM_CREDENTIALS uid/gid as the kernel reports them.

import ctypes
import errno
import json
import os
import socket
import struct
import subprocess
import sys
import threading

SO_PASSCRED = 16
SO_PEERCRED = 17
SCM_CREDENTIALS = 2


def err_name(e):
    if isinstance(e, socket.timeout):
        return "TIMEOUT"
    code = getattr(e, "errno", None)
    return errno.errorcode.get(code, str(e)) if code else str(e)


def split_endpoint(spec):
    proto, rest = spec.split(":", 1)
    if rest.startswith("["):
        addr, port = rest[1:].split("]:", 1)
    else:
        addr, port = rest.rsplit(":", 1)
    return proto, addr, int(port)


def family(addr):
    return socket.AF_INET6 if ":" in addr else socket.AF_INET


# ---------------------------------------------------------------- serve

def serve(log_path, specs):
    log = open(log_path, "a", buffering=1)
    lock = threading.Lock()

    def record(entry):
        with lock:
            log.write(json.dumps(entry) + "\n")
            log.flush()

    def tcp_loop(sock, addr, port):
        while True:
            conn, _ = sock.accept()
            threading.Thread(target=tcp_one, args=(conn, addr, port), daemon=True).start()

    def tcp_one(conn, addr, port):
        conn.settimeout(3)
        data = b""
        try:
            while b"\n" not in data and len(data) < 4096:
                chunk = conn.recv(4096)
                if not chunk:
                    break
                data += chunk
        except OSError:
            pass
        # The address the client actually reached (listeners may be wildcards).
        addr, port = conn.getsockname()[:2]
        record({"proto": "tcp", "addr": addr, "port": port, "bytes": len(data),
                "data": data[:200].decode("latin-1")})
        body = "UPSTREAM %s %d\n" % (addr, port)
        try:
            conn.sendall(("HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)).encode())
        except OSError:
            pass
        conn.close()

    def unix_one(conn, path):
        conn.settimeout(3)
        uid = gid = scm_uid = scm_gid = None
        try:
            _, uid, gid = struct.unpack("iII", conn.getsockopt(socket.SOL_SOCKET, SO_PEERCRED, 12))
        except OSError:
            pass
        data = b""
        try:
            while b"\n" not in data and len(data) < 4096:
                chunk, anc, _, _ = conn.recvmsg(4096, socket.CMSG_SPACE(12))
                if not chunk:
                    # At EOF the kernel attaches empty (uid 0) credentials.
                    break
                for level, kind, cdata in anc:
                    if level == socket.SOL_SOCKET and kind == SCM_CREDENTIALS and len(cdata) >= 12:
                        _, scm_uid, scm_gid = struct.unpack("iII", cdata[:12])
                data += chunk
        except OSError:
            pass
        record({"proto": "unixpath", "addr": path, "port": 0, "bytes": len(data),
                "data": data[:200].decode("latin-1"), "uid": uid, "gid": gid,
                "scm_uid": scm_uid, "scm_gid": scm_gid})
        try:
            conn.sendall(b"HOST\n")
        except OSError:
            pass
        conn.close()

    def unix_loop(sock, path):
        while True:
            conn, _ = sock.accept()
            threading.Thread(target=unix_one, args=(conn, path), daemon=True).start()

    def udp_loop(sock, addr, port):
        while True:
            data, _ = sock.recvfrom(4096)
            record({"proto": "udp", "addr": addr, "port": port, "bytes": len(data),
                    "data": data[:200].decode("latin-1")})

    for spec in specs:
        proto, addr, port = split_endpoint(spec)
        if proto == "unixpath":
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.bind(addr)
            os.chmod(addr, 0o666)
            # The kernel attaches the sender's credentials to every message.
            sock.setsockopt(socket.SOL_SOCKET, SO_PASSCRED, 1)
            sock.listen(64)
            threading.Thread(target=unix_loop, args=(sock, addr), daemon=True).start()
            continue
        kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
        sock = socket.socket(family(addr), kind)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family(addr) == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((addr, port))
        if proto == "tcp":
            sock.listen(64)
            target = tcp_loop
        else:
            target = udp_loop
        threading.Thread(target=target, args=(sock, addr, port), daemon=True).start()
    print("READY", flush=True)
    threading.Event().wait(120)


# ---------------------------------------------------------------- connect

def connect_one(proto, host, port, token, timeout):
    if proto == "udp":
        sock = socket.socket(family(host), socket.SOCK_DGRAM)
        try:
            sock.sendto((token + "\n").encode(), (host, port))
            return {"ok": True, "reply": "", "err": ""}
        except OSError as e:
            return {"ok": False, "reply": "", "err": err_name(e)}
        finally:
            sock.close()
    if proto == "unix":
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        address = "\0" + host
    elif proto in ("unixpath", "unixcred"):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        address = host
    else:
        sock = socket.socket(family(host), socket.SOCK_STREAM)
        address = (host, port)
    sock.settimeout(timeout)
    try:
        sock.connect(address)
        if proto == "unixcred":
            # Claim root: only CAP_SETUID/CAP_SETGID in the socket's user
            # namespace lets the kernel accept these credentials.
            creds = struct.pack("3i", os.getpid(), 0, 0)
            sock.sendmsg([(token + "\n").encode()],
                         [(socket.SOL_SOCKET, SCM_CREDENTIALS, creds)])
        else:
            sock.sendall((token + "\n").encode())
        reply = b""
        try:
            while True:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                reply += chunk
        except OSError:
            pass
        return {"ok": True, "reply": reply.decode("latin-1"), "err": ""}
    except OSError as e:
        return {"ok": False, "reply": "", "err": err_name(e)}
    finally:
        sock.close()


def connect_all(probes, timeout):
    results = [None] * len(probes)

    def run(i, probe):
        results[i] = connect_one(probe[0], probe[1], probe[2], probe[3], timeout)

    threads = [threading.Thread(target=run, args=(i, p)) for i, p in enumerate(probes)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


# ---------------------------------------------------------------- facts

MS_BIND = 4096
MS_REMOUNT = 32


def facts(req):
    out = {}
    status = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            status[key] = value.strip()
    out["status"] = {k: status.get(k) for k in
                     ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp")}
    # 0 when the session leader lives outside the sandbox's pid namespace,
    # i.e. the sandbox still shares the launcher's terminal session.
    out["sid"] = os.getsid(0)
    out["uid"] = os.getuid()
    out["gid"] = os.getgid()
    out["groups"] = os.getgroups()
    # /proc/self/environ is what the sandbox passed to exec, before python's
    # own locale coercion could add anything.
    with open("/proc/self/environ", "rb") as f:
        env = {}
        for item in f.read().split(b"\0"):
            if item:
                k, _, v = item.decode("latin-1").partition("=")
                env[k] = v
    out["env"] = env
    out["pids"] = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
    out["exists"] = {p: os.path.lexists(p) for p in req.get("exists", [])}
    out["read"] = {}
    for p in req.get("read", []):
        try:
            with open(p) as f:
                out["read"][p] = {"ok": True, "data": f.read()}
        except OSError as e:
            out["read"][p] = {"ok": False, "err": err_name(e)}
    out["write"] = {}
    for p, data in req.get("write", []):
        try:
            with open(p, "w") as f:
                f.write(data)
            out["write"][p] = {"ok": True}
        except OSError as e:
            out["write"][p] = {"ok": False, "err": err_name(e)}
    out["remount"] = {}
    libc = ctypes.CDLL(None, use_errno=True)
    for p, file, data in req.get("remount", []):
        # mount(2) directly: util-linux mount refuses non-root callers before
        # it ever asks the kernel.
        rc = libc.mount(None, p.encode(), None, MS_REMOUNT | MS_BIND, None)
        entry = {"mount_ok": rc == 0, "err": "" if rc == 0 else errno.errorcode.get(ctypes.get_errno(), "?")}
        try:
            with open(file, "w") as f:
                f.write(data)
            entry["write_ok"] = True
        except OSError as e:
            entry["write_ok"] = False
            entry["write_err"] = err_name(e)
        out["remount"][p] = entry
    out["sysctl"] = {}
    for p, data in req.get("sysctl", []):
        # Open for writing; write `data` (the host's CURRENT value, so that a
        # failing check changes nothing) unless it is null (open only).
        entry = {"open_ok": False, "write_ok": False, "err": ""}
        try:
            fd = os.open(p, os.O_WRONLY)
            entry["open_ok"] = True
            try:
                if data is not None:
                    os.write(fd, data.encode())
                    entry["write_ok"] = True
            finally:
                os.close(fd)
        except OSError as e:
            entry["err"] = err_name(e)
        out["sysctl"][p] = entry
    if req.get("proc_env"):
        out["environs"] = {}
        for pid in sorted(p for p in os.listdir("/proc") if p.isdigit()):
            entry = {}
            for what in ("environ", "cmdline"):
                try:
                    with open("/proc/%s/%s" % (pid, what), "rb") as f:
                        entry[what] = f.read().decode("latin-1")
                except OSError as e:
                    entry[what + "_err"] = err_name(e)
            out["environs"][pid] = entry
    if "memscan" in req:
        # Tokens arrive hex-encoded: pid 1's memory holds this request (the
        # command line bwrap runs), and must not hold the tokens because of it.
        out["memscan"] = memscan(1, [bytes.fromhex(t) for t in req["memscan"]])
    out["connect"] = connect_all(req.get("connect", []), req.get("timeout", 1.0))
    out["run"] = []
    for argv in req.get("run", []):
        try:
            r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=20)
            out["run"].append({"rc": r.returncode, "stdout": r.stdout.decode("latin-1"),
                               "stderr": r.stderr.decode("latin-1")})
        except OSError as e:
            out["run"].append({"rc": -1, "stdout": "", "stderr": err_name(e)})
    return out


PTRACE_ATTACH = 16
PTRACE_DETACH = 17


def memscan(pid, tokens):
    # Attach to `pid` as a debugger would, then read every readable mapping
    # through /proc/PID/mem and report which tokens occur in its memory.
    libc = ctypes.CDLL(None, use_errno=True)
    libc.ptrace.restype = ctypes.c_long
    libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
    out = {"attach_ok": False, "attach_err": "", "mem_ok": False, "bytes": 0, "found": [], "err": ""}
    if libc.ptrace(PTRACE_ATTACH, pid, None, None) == 0:
        out["attach_ok"] = True
        os.waitpid(pid, 0x40000000)  # __WALL: wait until the tracee stops
    else:
        out["attach_err"] = errno.errorcode.get(ctypes.get_errno(), "?")
    found = set()
    try:
        with open("/proc/%d/maps" % pid) as maps, open("/proc/%d/mem" % pid, "rb", 0) as mem:
            for line in maps:
                fields = line.split()
                if not fields[1].startswith("r"):
                    continue
                start, end = (int(x, 16) for x in fields[0].split("-"))
                if end - start > 64 << 20:
                    continue
                try:
                    mem.seek(start)
                    chunk = mem.read(end - start)
                except (OSError, OverflowError, ValueError):
                    continue
                out["mem_ok"] = True
                out["bytes"] += len(chunk)
                for t in tokens:
                    if t in chunk:
                        found.add(t.decode())
    except OSError as e:
        out["err"] = err_name(e)
    if out["attach_ok"]:
        libc.ptrace(PTRACE_DETACH, pid, None, None)
    out["found"] = sorted(found)
    return out


def main():
    mode = sys.argv[1]
    if mode == "serve":
        serve(sys.argv[2], sys.argv[3:])
    elif mode == "connect":
        print(json.dumps(connect_all(json.loads(sys.argv[3]), float(sys.argv[2]))))
    elif mode == "facts":
        print(json.dumps(facts(json.loads(sys.argv[2]))))
    else:
        sys.exit("unknown mode " + mode)


main()
