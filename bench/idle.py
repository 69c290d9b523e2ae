#!/usr/bin/env python3
"""bench/idle.sh's client and report.

  idle.py hold PORT PATH COUNT PID OUTFILE
      opens COUNT keep-alive connections to 127.0.0.1:PORT (256 at a time),
      sends one GET PATH on each and reads the whole response, keeps them all
      open and idle for 3 s, and writes PID's RSS before and after as JSON.
  idle.py report OUTDIR
      summary.md + results.json from the hold files, printed.
"""

import asyncio
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import finish_summary, read_meta  # noqa: E402

NAMES = ["gateway", "nginx", "previous"]


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


async def one(port, path, sem, conns):
    async with sem:
        r, w = await asyncio.open_connection("127.0.0.1", port)
        w.write(f"GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode())
        head = await r.readuntil(b"\r\n\r\n")
        status = head.split(b" ", 2)[1]
        if status != b"200":
            raise RuntimeError(f"GET {path} answered {status.decode()}")
        length = [int(h.split(b":")[1]) for h in head.split(b"\r\n")
                  if h.lower().startswith(b"content-length:")]
        if not length:
            raise RuntimeError("the response has no Content-Length")
        await r.readexactly(length[0])
        conns.append(w)


async def hold(port, path, count, pid):
    before = rss_kib(pid)
    sem, conns = asyncio.Semaphore(256), []
    try:
        await asyncio.gather(*[one(port, path, sem, conns) for _ in range(count)])
        await asyncio.sleep(3)
        after = rss_kib(pid)
        # Still open: the proxy did not close idle connections meanwhile.
        alive = sum(1 for w in conns if not w.transport.is_closing())
    finally:
        for w in conns:
            w.close()
    return {"before_kib": before, "after_kib": after, "connections": len(conns), "alive": alive,
            "per_conn_kib": (after - before) / count}


def report(outdir):
    meta = read_meta(os.path.join(outdir, "meta.env"))
    res, problems = {}, []
    for n in NAMES:
        path = os.path.join(outdir, f"{n}.json")
        if os.path.exists(path):
            with open(path) as f:
                res[n] = json.load(f)
            if res[n]["alive"] != res[n]["connections"]:
                problems.append(f"{n}: {res[n]['connections'] - res[n]['alive']} connections closed while idle")
    count = meta.get("connections", "?")
    lines = [
        f"# Idle keep-alive connections, {meta.get('date', '?')}",
        "",
        f"{meta.get('cpu', '?')}; gateway {meta.get('gateway', '?')}; nginx {meta.get('nginx', '?')}, "
        f"one worker each; {count} HTTP/1.1 connections from one client, one proxied 1 KiB GET each, "
        "then idle for 3 s; RSS of the proxy process (nginx: its worker) before and after.",
        "",
        "| proxy | RSS before | RSS with the connections idle | per idle connection |",
        "|---|---:|---:|---:|",
    ]
    for n, r in res.items():
        lines.append(f"| {n} | {r['before_kib'] / 1024:.1f} MiB | {r['after_kib'] / 1024:.1f} MiB | "
                     f"{r['per_conn_kib']:.2f} KiB |")
    g = res.get("gateway")
    if g:
        lines += ["", f"- target: at most 4 KiB per idle connection: "
                  f"{'met' if g['per_conn_kib'] <= 4 else 'MISSED'} ({g['per_conn_kib']:.2f} KiB)."]
    return finish_summary(outdir, lines, meta, problems, {"meta": meta, "results": res})


def main(argv):
    if argv[1] == "hold":
        port, path, count, pid, out = int(argv[2]), argv[3], int(argv[4]), int(argv[5]), argv[6]
        r = asyncio.run(hold(port, path, count, pid))
        with open(out, "w") as f:
            json.dump(r, f, indent=2)
        print(json.dumps(r))
        return 0
    if argv[1] == "report":
        return report(argv[2])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
