#!/usr/bin/env python3
"""Report of bench/grpc.sh: `grpc.py OUTDIR` writes summary.md and
results.json from the NAME.rROUND.json / .cpu files, and prints them."""

import glob
import json
import os
import re
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import cpu_during, finish_summary, read_meta  # noqa: E402


def main(outdir):
    meta = read_meta(os.path.join(outdir, "meta.env"))
    proxy_cpu = meta.get("proxy_cpu", "0")
    runs = {}
    for path in sorted(glob.glob(os.path.join(outdir, "*.r*.json"))):
        name = re.sub(r"\.r\d+\.json$", "", os.path.basename(path))
        with open(path) as f:
            r = json.load(f)
        busy = cpu_during(path[:-5] + ".cpu").get(proxy_cpu)
        r["cpu_us"] = busy / 100 * r["seconds"] * 1e6 / r["calls"] if busy and r["calls"] and not name.startswith("direct") else None
        runs.setdefault(name, []).append(r)
    med = lambda xs: statistics.median(xs) if xs else None  # noqa: E731
    res = {n: {"rps": med([r["rps"] for r in rs]), "p99_us": med([r["p99_us"] for r in rs]),
               "cpu_us": med([r["cpu_us"] for r in rs if r["cpu_us"]]), "errors": sum(r["errors"] for r in rs)}
           for n, rs in runs.items()}
    lines = [f"# gRPC unary calls, {meta.get('date', '?')}", "",
             f"{meta.get('cpu', '?')}, {meta.get('nproc')} cores; gateway {meta.get('gateway')}; nginx {meta.get('nginx')}; "
             f"proxies on CPU {proxy_cpu}, load generator and server (tonic, one thread each) on CPU {meta.get('load_cpu')}; "
             f"{meta.get('connections')} HTTP/2 connections; {meta.get('rounds')} rounds x {meta.get('duration')}, medians.", "",
             "| in flight | direct calls/s | gateway calls/s | nginx calls/s | gateway / nginx | gateway / direct | p99 gateway / nginx | proxy CPU per call, gateway / nginx | errors |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    fmt = lambda v, f="{:,.0f}": "n/a" if v is None else f.format(v)  # noqa: E731
    for n in meta.get("in_flight", "64 256").split():
        d, g, x = (res.get(f"{c}-c{n}", {}) for c in ("direct", "gateway", "nginx"))
        ratio = lambda a, b: fmt(a / b, "{:.2f}x") if a and b else "n/a"  # noqa: E731
        lines.append(f"| {n} | {fmt(d.get('rps'))} | {fmt(g.get('rps'))} | {fmt(x.get('rps'))} | "
                     f"**{ratio(g.get('rps'), x.get('rps'))}** | {ratio(g.get('rps'), d.get('rps'))} | "
                     f"{fmt(g.get('p99_us'), '{:.0f}')} / {fmt(x.get('p99_us'), '{:.0f}')} µs | "
                     f"{fmt(g.get('cpu_us'), '{:.1f}')} / {fmt(x.get('cpu_us'), '{:.1f}')} µs | "
                     f"{sum(r.get('errors', 0) for r in (d, g, x))} |")
    return finish_summary(outdir, lines, meta, [], res)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
