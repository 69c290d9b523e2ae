#!/usr/bin/env python3
"""Report for bench/routes.sh: summary.md + results.json in OUTDIR, printed."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import finish_summary, medians, read_meta  # noqa: E402

WHERE = ["first", "middle", "last", "404"]
BUILDS = ["gateway", "previous"]


def main(outdir):
    meta = read_meta(os.path.join(outdir, "meta.env"))
    cpu = meta.get("proxy_cpu", "0")
    names = [f"{b}-{w}" for b in BUILDS for w in WHERE]
    res, problems = medians(outdir, names, cpu, {f"{b}-404" for b in BUILDS})
    g = lambda n, k: (res.get(n) or {}).get(k)  # noqa: E731
    fmt = lambda v, f="{:.0f}": "n/a" if v is None else f.format(v)  # noqa: E731
    n = int(meta.get("routes", "0"))
    label = {"first": "route 1", "middle": f"route {n // 2 + 1}", "last": f"route {n}", "404": "no route (404)"}
    lines = [
        f"# Routing benchmark, {meta.get('date', '?')}",
        "",
        f"{meta.get('cpu', '?')}; gateway {meta.get('gateway', '?')}; previous {meta.get('previous', '?')}; "
        f"{n} routes `/svc{{i}}/items/{{id}}/*` on the echo target; proxy on CPU {cpu}, "
        f"wrk -t1 -c{meta.get('connections')} on CPU {meta.get('load_cpu')}; "
        f"{meta.get('rounds')} rounds x {meta.get('duration')}, medians.",
        "",
        "| build | path | req/s | vs route 1 | p99 | CPU per request |",
        "|---|---|---:|---:|---:|---:|",
    ]
    verdict = []
    for b in BUILDS:
        first = g(f"{b}-first", "rps")
        if first is None:
            continue
        for w in WHERE:
            name = f"{b}-{w}"
            rel = g(name, "rps") / first if g(name, "rps") else None
            lines.append(f"| {b} | {label[w]} | {fmt(g(name, 'rps'))} | {fmt(rel, '{:.2f}x')} | "
                         f"{fmt(g(name, 'p99_ms'), '{:.2f} ms')} | {fmt(g(name, 'cpu_us'), '{:.1f} µs')} |")
            if b == "gateway" and w in ("last", "404"):
                verdict.append(rel is not None and rel >= 0.95)
    lines += [
        "",
        f"- target: the last route and a 404 within 5 % of route 1: "
        f"{'met' if verdict and all(verdict) else 'MISSED'}.",
        f"- gateway peak RSS {int(meta.get('gateway_vmhwm_kib') or 0) / 1024:.1f} MiB.",
    ]
    return finish_summary(outdir, lines, meta, problems,
                          {"meta": meta, "results": res, "problems": problems})


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
