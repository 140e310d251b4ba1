#!/usr/bin/env python3
"""Generates profiles/docker/seccomp.json, the seccomp profile the docker target selects
(option `seccomp_profile`) for containers that did not declare `nestedSandbox`.

Input: the engine default profile of containers-common (podman), Debian 12's
/usr/share/containers/seccomp.json (containers-common 0.50, Apache-2.0), itself derived from
Docker's default profile. Output: the same allowlist, except that no process can create or join a
user namespace:

- clone:   allowed only when CLONE_NEWUSER is not in the flags; with it, EPERM
           (flags are argument 0, argument 1 on s390/s390x, as in Docker's default profile);
- unshare: the same on its flags argument;
- clone3:  ENOSYS (seccomp cannot read flags behind a pointer; libc then falls back to clone);
- setns:   allowed only for an explicit non-user namespace type; nstype 0 ("any") and
           CLONE_NEWUSER are EPERM.

Usage: scripts/docker-seccomp.py [/usr/share/containers/seccomp.json] > profiles/docker/seccomp.json
"""
import json
import sys

CLONE_NEWUSER = 0x10000000
# CLONE_NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWPID, NEWNET, NEWTIME
OTHER_NS = [0x00020000, 0x02000000, 0x04000000, 0x08000000, 0x20000000, 0x40000000, 0x00000080]
S390 = ["s390", "s390x"]
REMOVED = {"clone", "clone3", "unshare", "setns"}
NOTE = "capgate: no user namespaces unless nestedSandbox (see docs/security.md)"


def arg(index, value, value_two, op):
    return {"index": index, "value": value, "valueTwo": value_two, "op": op}


def rule(names, action, args=(), includes=None, excludes=None, errno=None):
    r = {
        "names": names,
        "action": action,
        "args": list(args),
        "comment": NOTE,
        "includes": includes or {},
        "excludes": excludes or {},
    }
    if errno is not None:
        r["errnoRet"] = errno
    return r


def flags_rules(name, index, arches_key):
    scope = {"arches": S390} if arches_key else None
    inc, exc = (scope, None) if arches_key == "includes" else (None, scope)
    return [
        rule([name], "SCMP_ACT_ALLOW", [arg(index, CLONE_NEWUSER, 0, "SCMP_CMP_MASKED_EQ")], inc, exc),
        rule([name], "SCMP_ACT_ERRNO", [arg(index, CLONE_NEWUSER, CLONE_NEWUSER, "SCMP_CMP_MASKED_EQ")], inc, exc, errno=1),
    ]


def main():
    src = sys.argv[1] if len(sys.argv) > 1 else "/usr/share/containers/seccomp.json"
    profile = json.load(open(src))
    for entry in profile["syscalls"]:
        entry["names"] = [n for n in entry["names"] if n not in REMOVED]
    profile["syscalls"] = [e for e in profile["syscalls"] if e["names"]]
    extra = []
    extra += flags_rules("clone", 0, "excludes")
    extra += flags_rules("clone", 1, "includes")
    extra += flags_rules("unshare", 0, None)
    extra.append(rule(["clone3"], "SCMP_ACT_ERRNO", errno=38))
    for ns in OTHER_NS:
        extra.append(rule(["setns"], "SCMP_ACT_ALLOW", [arg(1, ns, 0, "SCMP_CMP_EQ")]))
    for ns in (0, CLONE_NEWUSER):
        extra.append(rule(["setns"], "SCMP_ACT_ERRNO", [arg(1, ns, 0, "SCMP_CMP_EQ")], errno=1))
    profile["syscalls"] += extra
    json.dump(profile, sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
