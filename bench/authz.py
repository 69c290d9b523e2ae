#!/usr/bin/env python3
"""Report for bench/authz.sh: summary.md + results.json in OUTDIR, printed."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import finish_summary, medians, read_meta  # noqa: E402

NAMES = ["upstream", "gateway-none", "gateway-cached", "gateway-miss", "haproxy",
         "prev-none", "prev-cached"]


def main(outdir):
    meta = read_meta(os.path.join(outdir, "meta.env"))
    cpu = meta.get("proxy_cpu", "0")
    res, problems = medians(outdir, NAMES, cpu)
    g = lambda n, k: (res.get(n) or {}).get(k)  # noqa: E731
    ratio = lambda a, b: a / b if a and b else None  # noqa: E731
    vs_haproxy = ratio(g("gateway-cached", "rps"), g("haproxy", "rps"))
    hit_cost = (1 - g("gateway-cached", "rps") / g("gateway-none", "rps")) if g("gateway-none", "rps") and g("gateway-cached", "rps") else None
    hit_cpu = ratio(g("gateway-cached", "cpu_us"), g("gateway-none", "cpu_us"))
    fmt = lambda v, f="{:.0f}": "n/a" if v is None else f.format(v)  # noqa: E731
    lines = [
        f"# Authorizer benchmark, {meta.get('date', '?')}",
        "",
        f"{meta.get('cpu', '?')}; gateway {meta.get('gateway', '?')}; HAProxy {meta.get('haproxy', '?')}; "
        f"proxy on CPU {cpu}, wrk -t1 -c{meta.get('connections')} and the bare upstream on CPU {meta.get('load_cpu')}; "
        f"{meta.get('rounds')} rounds x {meta.get('duration')}, medians; 1 KiB GET.",
        "",
        "| contender | req/s | p99 | proxy CPU per request |",
        "|---|---:|---:|---:|",
    ]
    for n in NAMES:
        if n.startswith("prev-") and not res.get(n):
            continue
        lines.append(f"| {n} | {fmt(g(n, 'rps'))} | {fmt(g(n, 'p99_ms'), '{:.1f} ms')} | {fmt(g(n, 'cpu_us'), '{:.1f} µs')} |")
    lines += [
        "",
        f"- gateway (cached token) / HAProxy: **{fmt(vs_haproxy, '{:.2f}x')}** req/s (target >= 1.3x: "
        f"{'met' if vs_haproxy and vs_haproxy >= 1.3 else 'MISSED'}); CPU per request "
        f"{fmt(ratio(g('gateway-cached', 'cpu_us'), g('haproxy', 'cpu_us')), '{:.2f}x')} HAProxy's.",
        f"- cache hit against `auth: none`: **{fmt(hit_cost * 100 if hit_cost is not None else None, '{:.1f} %')}** fewer req/s, "
        f"CPU per request {fmt(hit_cpu, '{:.2f}x')} (target < 5 %: {'met' if hit_cost is not None and hit_cost < 0.05 else 'MISSED'}).",
        f"- cache miss on every request: {fmt(g('gateway-miss', 'rps'))} req/s, "
        f"{fmt(ratio(g('gateway-miss', 'rps'), g('gateway-none', 'rps')), '{:.2f}x')} of `auth: none`.",
        f"- gateway peak RSS {int(meta.get('gateway_vmhwm_kib') or 0) / 1024:.1f} MiB.",
    ]
    return finish_summary(outdir, lines, meta, problems,
                          {"meta": meta, "results": res, "problems": problems})


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
