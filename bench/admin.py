#!/usr/bin/env python3
"""Helpers for bench/admin.sh.
`create PORT TOKEN N`       creates N users through POST /admin/users (keep-alive), prints users/s
`cursor PORT TOKEN N`       prints the `after` cursor that starts a page at user N
`list-loop PORT TOKEN`      lists every user, pages of 1000, until killed; prints pages read
`report OUTDIR`             writes summary.md + results.json, prints them"""

import http.client
import json
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import finish_summary, fmt_ms, medians, read_meta, store_table  # noqa: E402

STORES = [("redb", "redb"), ("pg", "PostgreSQL")]
READS = [("first", "first page of 100"), ("deep", "a page of 100 near the end"),
         ("search", "search, 1 user in 100 matches")]


def conn(port):
    return http.client.HTTPConnection("127.0.0.1", int(port), timeout=30)


def call(c, token, method, path, body=None):
    headers = {"Authorization": f"Bearer {token}"}
    if body is not None:
        headers["Content-Type"] = "application/json"
    c.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
    r = c.getresponse()
    data = r.read()
    if r.status >= 300:
        raise SystemExit(f"{method} {path}: {r.status} {data[:200]!r}")
    return json.loads(data) if data else None


def create(port, token, n):
    c, start = conn(port), time.monotonic()
    for i in range(n):
        call(c, token, "POST", "/admin/users", {
            "email": f"u{i}@d{i % 100}.example.com", "password": f"bench-Pa55word-{i}",
            "firstName": "B", "lastName": "U"})
    took = time.monotonic() - start
    print(f"{n} users created in {took:.1f} s: {n / took:.0f} users/s")


def cursor(port, token, n):
    c, after, left = conn(port), None, n
    while left > 0:
        limit = min(1000, left)
        q = f"/admin/users?limit={limit}" + (f"&after={after}" if after else "")
        after = call(c, token, "GET", q)["next"]
        left -= limit
    print(after)


def list_loop(port, token):
    pages = 0
    signal.signal(signal.SIGTERM, lambda *_: (print(f"{pages} pages of 1000 read"), sys.exit(0)))
    c = conn(port)
    while True:
        after = None
        while True:
            q = "/admin/users?limit=1000" + (f"&after={after}" if after else "")
            after = call(c, token, "GET", q)["next"]
            pages += 1
            if after is None:
                break


def report(outdir):
    meta = read_meta(os.path.join(outdir, "meta.env"))
    reads, problems = medians(outdir, [f"{s}-{r}" for s, _ in STORES for r, _ in READS], None)
    names = [f"{s}-proxy-{w}" for s, _ in STORES for w in ("idle", "listing")]
    proxied, p2 = medians(outdir, names, "none")
    problems += p2
    created = {}
    for store, _ in STORES:
        try:
            with open(os.path.join(outdir, f"{store}-create.txt")) as f:
                created[store] = f.read().strip()
        except OSError:
            created[store] = "n/a"
    g = lambda d, n, k: (d.get(n) or {}).get(k)  # noqa: E731
    fmt = lambda v: "n/a" if v is None else f"{v:.0f}"  # noqa: E731
    lines = [
        f"# Admin API, {meta.get('users')} users, {meta.get('date', '?')}",
        "",
        f"{meta.get('cpu', '?')}, {meta.get('nproc')} cores; gateway {meta.get('gateway', '?')}; "
        f"PostgreSQL {meta.get('postgres', '?')}; bcrypt cost {meta.get('bcrypt_cost')}; "
        f"{meta.get('rounds')} rounds x {meta.get('duration')}, medians; gateways unpinned.",
        "",
        "Creating the users (one client, POST /admin/users): "
        + "; ".join(f"{label}: {created[s]}" for s, label in STORES),
        "",
        f"Reads, wrk with {meta.get('admin_connections')} connections:",
        "",
        *store_table(STORES, READS, reads),
    lines += [
        "",
        f"Proxied requests (`auth: none`, {meta.get('proxied_connections')} connections), alone and while "
        "a client lists every user in pages of 1000 in a loop:",
        "",
        "| store | alone req/s | p99 | while listing req/s | p99 | ratio |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for s, label in STORES:
        a, b = g(proxied, f"{s}-proxy-idle", "rps"), g(proxied, f"{s}-proxy-listing", "rps")
        ratio = f"{b / a:.2f}x" if a and b else "n/a"
        lines.append(f"| {label} | {fmt(a)} | {fmt_ms(g(proxied, f'{s}-proxy-idle', 'p99_ms'))} | "
                     f"{fmt(b)} | {fmt_ms(g(proxied, f'{s}-proxy-listing', 'p99_ms'))} | {ratio} |")
    return finish_summary(outdir, lines, meta, problems, {"reads": reads, "proxied": proxied, "created": created})


def main(argv):
    cmd = argv[1] if len(argv) > 1 else ""
    if cmd == "create":
        return create(argv[2], argv[3], int(argv[4]))
    if cmd == "cursor":
        return cursor(argv[2], argv[3], int(argv[4]))
    if cmd == "list-loop":
        return list_loop(argv[2], argv[3])
    if cmd == "report":
        return report(argv[2])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
