#!/usr/bin/env python3
"""Helpers for bench/accounts.sh.
`signup PORT`        signs bench@example.com up and in 8 more times (9 sessions)
`tokens PORT`        signs in (one more session), rotates once; prints ACCESS REPLACED_REFRESH
`deliveries PORT`    prints the admin listener's delivered/failed/dropped reset counts
`report OUTDIR`      writes summary.md + results.json, prints them"""

import http.client
import json
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import finish_summary, medians, read_meta, store_table  # noqa: E402

STORES = [("redb", "redb"), ("pg", "PostgreSQL")]
RUNS = [("sessions", "GET /sessions"), ("grace", "refresh in the reuse interval"),
        ("reset-unknown", "reset, unknown email"), ("reset-known", "reset, known email")]
USER = {"email": "bench@example.com", "password": "bench-Pa55word-x", "firstName": "B", "lastName": "U"}


def post(port, path, body):
    c = http.client.HTTPConnection("127.0.0.1", int(port), timeout=30)
    c.request("POST", path, body=json.dumps(body), headers={"Content-Type": "application/json"})
    r = c.getresponse()
    data = r.read()
    if r.status >= 300:
        raise SystemExit(f"POST {path}: {r.status} {data[:200]!r}")
    return json.loads(data)["data"]


def signup(port):
    post(port, "/signup", USER)
    for _ in range(8):
        post(port, "/signin", {"email": USER["email"], "password": USER["password"]})
    print("bench@example.com with 9 sessions")


def tokens(port):
    first = post(port, "/signin", {"email": USER["email"], "password": USER["password"]})
    post(port, "/refresh-token", {"refreshToken": first["refresh_token"]})
    print(first["access_token"], first["refresh_token"])


def deliveries(port):
    c = http.client.HTTPConnection("127.0.0.1", int(port), timeout=30)
    c.request("GET", "/metrics")
    text = c.getresponse().read().decode()
    got = {}
    for line in text.splitlines():
        if line.startswith("gateway_password_reset_deliveries_total{"):
            outcome = line.split('outcome="')[1].split('"')[0]
            got[outcome] = int(float(line.rsplit(" ", 1)[1]))
    print(json.dumps(got))


def report(outdir):
    meta = read_meta(os.path.join(outdir, "meta.env"))
    rounds = int(meta.get("rounds", "3"))
    secs = sum(float(meta.get(k, "0s").rstrip("s")) for k in ("duration", "warmup"))
    names = [f"{store}-{run}" for store, _ in STORES for run, _ in RUNS]
    runs, problems = medians(outdir, names, None)
    made = {}
    for store, _ in STORES:
        per_round = []
        for rnd in range(1, rounds + 1):
            try:
                with open(os.path.join(outdir, f"{store}-deliveries-before.r{rnd}.txt")) as f:
                    before = json.load(f)
                with open(os.path.join(outdir, f"{store}-deliveries-after.r{rnd}.txt")) as f:
                    after = json.load(f)
            except (OSError, ValueError):
                continue
            per_round.append({k: after.get(k, 0) - before.get(k, 0) for k in ("delivered", "failed", "dropped")})
        if per_round:
            made[store] = {k: statistics.median(r[k] for r in per_round) for k in ("delivered", "failed", "dropped")}
    g = lambda n, k: (runs.get(n) or {}).get(k)  # noqa: E731
    fmt = lambda v: "n/a" if v is None else f"{v:.0f}"  # noqa: E731
    lines = [
        f"# Account endpoints, {meta.get('date', '?')}",
        "",
        f"{meta.get('cpu', '?')}, {meta.get('nproc')} cores; gateway {meta.get('gateway', '?')}; "
        f"PostgreSQL {meta.get('postgres', '?')}; wrk with {meta.get('connections')} connections; "
        f"{rounds} rounds x {meta.get('duration')}, medians; gateways unpinned, wrk on CPU {meta.get('load_cpu')}.",
        "",
        *store_table(STORES, RUNS, runs),
    ]
    lines += ["", f"Reset tokens made and delivered to the webhook during the known-email run, its "
              f"warm-up included ({secs:.0f} s; every 202 asks for one, `resend_interval: 0s`), medians:", "",
              "| store | delivered | per second | failed attempts | dropped (1,024 pending) |",
              "|---|---:|---:|---:|---:|"]
    for s, label in STORES:
        m = made.get(s, {})
        delivered = m.get("delivered")
        lines.append(f"| {label} | {fmt(delivered)} | "
                     f"{fmt(delivered / secs) if delivered is not None else 'n/a'} | "
                     f"{fmt(m.get('failed'))} | {fmt(m.get('dropped'))} |")
    return finish_summary(outdir, lines, meta, problems, {"runs": runs, "deliveries": made})


def main(argv):
    cmd = argv[1] if len(argv) > 1 else ""
    if cmd == "signup":
        return signup(argv[2])
    if cmd == "tokens":
        return tokens(argv[2])
    if cmd == "deliveries":
        return deliveries(argv[2])
    if cmd == "report":
        return report(argv[2])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
