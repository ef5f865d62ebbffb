"""The loopback Hub server for the download benchmark, in its own process.

Run by ``bench/run.py`` so the server's Python does not share a GIL with the downloader it is measured
against (curl gets the same server). Prints the server URL on stdout, then answers commands on stdin,
one per line: ``log NAME`` (a JSON list of the GETs of NAME: range, bytes sent, status), ``clear``,
``throttle BPS`` (0: off), ``quit``. Bench-only code.
"""
from __future__ import annotations

import functools
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.fixtures.hub_server import HubFile, HubServer  # noqa: E402

# The fixture hashes the whole file on every request (fine for KB-sized test files). At hundreds of MB that
# would put ~0.5 s of server-side hashing in front of every response, curl's included: hash once.
for _name in ("sha256", "git_sha1"):
    _prop = functools.cached_property(getattr(HubFile, _name).fget)
    _prop.__set_name__(HubFile, _name)
    setattr(HubFile, _name, _prop)


def main() -> int:
    repo, name, path = sys.argv[1], sys.argv[2], sys.argv[3]
    data = Path(path).read_bytes()
    with HubServer(lifetime=1200) as srv:
        srv.add(repo, {name: data})
        f = srv.repos[repo].files[name]
        _ = f.sha256, f.git_sha1
        print(srv.url, flush=True)
        for line in sys.stdin:
            cmd, _, arg = line.strip().partition(" ")
            if cmd == "log":
                rows = [{"range": r.range, "sent": r.sent, "status": r.status} for r in srv.requests_for(arg)]
                print(json.dumps(rows), flush=True)
            elif cmd == "clear":
                with srv._lock:
                    srv.log.clear()
                print("[]", flush=True)
            elif cmd == "throttle":  # bytes per second, 0 for none
                srv.repos[repo].files[name].faults.throttle_bps = int(arg) or None
                print("[]", flush=True)
            elif cmd == "quit":
                break
    return 0


if __name__ == "__main__":
    sys.exit(main())
