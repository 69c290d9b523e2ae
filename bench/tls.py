#!/usr/bin/env python3
"""Report for bench/tls.sh: summary.md + results.json in OUTDIR, printed."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import finish_summary, medians, read_meta  # noqa: E402

NAMES = ["upstream", "gateway-http", "gateway-https", "nginx-https", "gateway-prev-http"]


def main(outdir):
    meta = read_meta(os.path.join(outdir, "meta.env"))
    cpu = meta.get("proxy_cpu", "0")
    res, problems = medians(outdir, NAMES, cpu)
    g = lambda n, k: (res.get(n) or {}).get(k)  # noqa: E731
    ratio = lambda a, b: a / b if a and b else None  # noqa: E731
    fmt = lambda v, f="{:.0f}": "n/a" if v is None else f.format(v)  # noqa: E731
    lines = [
        f"# TLS and operations benchmark, {meta.get('date', '?')}",
        "",
        f"{meta.get('cpu', '?')}; gateway {meta.get('gateway', '?')}; nginx {meta.get('nginx', '?')}; "
        f"proxy on CPU {cpu}, wrk -t1 -c{meta.get('connections')} (HTTP/1.1 keep-alive; TLS 1.3, ECDSA P-256) "
        f"and the bare upstream on CPU {meta.get('load_cpu')}; {meta.get('rounds')} rounds x {meta.get('duration')}, medians; 1 KiB GET.",
        "",
        "| contender | req/s | p99 | proxy CPU per request |",
        "|---|---:|---:|---:|",
    ]
    for n in NAMES:
        if n in res:
            lines.append(f"| {n} | {fmt(g(n, 'rps'))} | {fmt(g(n, 'p99_ms'), '{:.1f} ms')} | {fmt(g(n, 'cpu_us'), '{:.1f} µs')} |")
    lines += [
        "",
        f"- HTTPS, gateway / nginx: **{fmt(ratio(g('gateway-https', 'rps'), g('nginx-https', 'rps')), '{:.2f}x')}** req/s, "
        f"CPU per request {fmt(ratio(g('gateway-https', 'cpu_us'), g('nginx-https', 'cpu_us')), '{:.2f}x')} nginx's.",
        f"- gateway HTTPS / its plain listener: {fmt(ratio(g('gateway-https', 'rps'), g('gateway-http', 'rps')), '{:.2f}x')} req/s.",
    ]
    if "gateway-prev-http" in res:
        lines.append(
            f"- this build / the previous one ({meta.get('previous')}), plain: "
            f"{fmt(ratio(g('gateway-http', 'rps'), g('gateway-prev-http', 'rps')), '{:.2f}x')} req/s, CPU per request "
            f"{fmt(ratio(g('gateway-http', 'cpu_us'), g('gateway-prev-http', 'cpu_us')), '{:.2f}x')} (what metrics and the operations work cost).")
    lines.append(f"- gateway peak RSS {int(meta.get('gateway_vmhwm_kib') or 0) / 1024:.1f} MiB.")
    return finish_summary(outdir, lines, meta, problems,
                          {"meta": meta, "results": res, "problems": problems})


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
