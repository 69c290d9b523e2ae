#!/usr/bin/env python3
"""Report for bench/store.sh: summary.md + results.json in OUTDIR, printed.
`report OUTDIR` writes them; `brief OUTDIR PREFIX` prints one endpoint run (its wrk outputs PREFIX.gN.txt)."""

import glob
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import finish_summary, load_run, medians, read_meta  # noqa: E402

CONTENDERS = [("redb", "redb, 1 gateway"), ("pg1", "PostgreSQL, 1 gateway"),
              ("pg2", "PostgreSQL, 2 gateways")]
OPS = ["signup", "signin", "refresh"]


def endpoint_run(outdir, prefix):
    """One run over all its gateways: summed req/s, worst p99, problems."""
    runs = [load_run(p) for p in sorted(glob.glob(os.path.join(outdir, f"{prefix}.g*.txt")))]
    problems = [q for r in runs for q in r["problems"]]
    if not runs or problems:
        return None, problems or ["no runs"]
    return {"rps": sum(r["rps"] for r in runs), "p99_ms": max(r["p99_ms"] for r in runs)}, []


def main(outdir):
    meta = read_meta(os.path.join(outdir, "meta.env"))
    rounds = int(meta.get("rounds", "3"))
    res, problems = {}, []
    for name, _ in CONTENDERS:
        for op in OPS:
            got = []
            for rnd in range(1, rounds + 1):
                r, p = endpoint_run(outdir, f"{name}-{op}.r{rnd}")
                problems += [f"{name} {op} round {rnd}: {q}" for q in p]
                if r:
                    got.append(r)
            if got:
                res[f"{name}-{op}"] = {k: statistics.median(g[k] for g in got) for k in ("rps", "p99_ms")}
    cpu = meta.get("proxy_cpu", "0")
    proxied, p2 = medians(outdir, ["proxy-redb", "proxy-pg"], cpu)
    problems += p2
    g = lambda n, k: (res.get(n) or {}).get(k)  # noqa: E731
    fmt = lambda v, f="{:.0f}": "n/a" if v is None else f.format(v)  # noqa: E731
    ratio = lambda a, b: a / b if a and b else None  # noqa: E731
    lines = [
        f"# User stores: redb and PostgreSQL, {meta.get('date', '?')}",
        "",
        f"{meta.get('cpu', '?')}, {meta.get('nproc')} cores; gateway {meta.get('gateway', '?')}; "
        f"PostgreSQL {meta.get('postgres', '?')}; bcrypt cost {meta.get('bcrypt_cost')}; "
        f"{meta.get('rounds')} rounds x {meta.get('duration')}, medians.",
        "",
        f"Built-in endpoints, wrk with {meta.get('endpoint_connections')} connections, gateways unpinned:",
        "",
        "| store | " + " | ".join(f"{op} req/s | {op} p99" for op in OPS) + " |",
        "|---|" + "---:|---:|" * len(OPS),
    ]
    for name, label in CONTENDERS:
        cells = []
        for op in OPS:
            cells += [fmt(g(f"{name}-{op}", "rps")), fmt(g(f"{name}-{op}", "p99_ms"), "{:.1f} ms")]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines.append("")
    for name, label in CONTENDERS[1:]:
        parts = [f"{op} {fmt(ratio(g(f'{name}-{op}', 'rps'), g(f'redb-{op}', 'rps')), '{:.2f}x')}" for op in OPS]
        lines.append(f"- {label} / redb: " + ", ".join(parts) + ".")
    pr = lambda n, k: (proxied.get(n) or {}).get(k)  # noqa: E731
    lines += [
        "",
        f"Proxied requests with a cached bearer token, one worker on CPU {cpu}, wrk -c{meta.get('proxied_connections')}:",
        "",
        "| store | req/s | p99 | proxy CPU per request |",
        "|---|---:|---:|---:|",
    ]
    for n, label in [("proxy-redb", "redb"), ("proxy-pg", "PostgreSQL")]:
        lines.append(f"| {label} | {fmt(pr(n, 'rps'))} | {fmt(pr(n, 'p99_ms'), '{:.2f} ms')} | {fmt(pr(n, 'cpu_us'), '{:.1f} µs')} |")
    xact = open(os.path.join(outdir, "proxied-xact.txt")).read().split()
    asked = int(xact[1]) - int(xact[0]) if len(xact) == 2 else None
    served = sum(load_run(p)["requests"] or 0 for p in glob.glob(os.path.join(outdir, "proxy-pg.r*.txt")))
    lines += [
        "",
        f"- PostgreSQL / redb: {fmt(ratio(pr('proxy-pg', 'rps'), pr('proxy-redb', 'rps')), '{:.3f}x')} req/s, "
        f"CPU per request {fmt(ratio(pr('proxy-pg', 'cpu_us'), pr('proxy-redb', 'cpu_us')), '{:.3f}x')}.",
        f"- Transactions committed in the PostgreSQL gateway's database during that part: {fmt(asked)}, "
        f"against {fmt(served)} proxied requests: the revocation feed's backstop reads (every 5 s) and "
        "PostgreSQL's own background work; none per request.",
    ]
    return finish_summary(outdir, lines, meta, problems,
                          {"meta": meta, "endpoints": res, "proxied": proxied, "problems": problems})


def brief(outdir, prefix):
    r, problems = endpoint_run(outdir, prefix)
    if not r:
        return "INVALID: " + "; ".join(problems)
    return f"{r['rps']:>8.0f} req/s  p99 {r['p99_ms']:.1f} ms"


if __name__ == "__main__":
    if sys.argv[1] == "brief":
        print(brief(sys.argv[2], sys.argv[3]))
        sys.exit(0)
    if sys.argv[1] == "report":
        sys.exit(main(sys.argv[2]))
    sys.exit(f"usage: {sys.argv[0]} brief OUTDIR PREFIX | report OUTDIR")
