#!/usr/bin/env python3
"""Helpers for bench/run.sh (Python standard library only).

Subcommands:
  free-ports N                   print N distinct free TCP ports on 127.0.0.1
  cpu-busy SECS [LIMIT]          per-CPU busy % over SECS seconds; exit 1 if one is over LIMIT
  wait-http PORT PATH PID SECS LEN
                                 poll http://127.0.0.1:PORT/PATH until it answers
                                 200 with a body of LEN bytes; fail early if PID dies
  parse FILE                     parse one wrk output file, print JSON
  brief FILE                     one human line for a wrk output file
  report MANIFEST META OUTDIR    build summary.md + results.json, print the summary
  fixed-load PORT PATH CONNS N LEN
                                 exactly N keep-alive GETs over CONNS connections,
                                 one in flight per connection; fail unless every
                                 answer is 200 with a body of LEN bytes
"""

import http.client
import json
import os
import re
import socket
import statistics
import glob
import sys
import time

# ---------------------------------------------------------------- ports / readiness


def fixed_load(port, path, conns, n, want_len):
    """N requests, round-robin over CONNS keep-alive connections, each
    answer read whole before that connection sends again: a fixed amount of
    work, so a profile's totals divide by N. $FIXED_LOAD_TOKEN, if set, is
    sent as a bearer token."""
    socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(conns)]
    token = os.environ.get("FIXED_LOAD_TOKEN")
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    req = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}\r\n".encode()
    done = 0
    try:
        while done < n:
            batch = socks[: min(conns, n - done)]
            for s in batch:
                s.sendall(req)
            for s in batch:
                buf = b""
                while True:
                    chunk = s.recv(65536)
                    if not chunk:
                        raise SystemExit(f"connection closed after {done} answers")
                    buf += chunk
                    head, sep, body = buf.partition(b"\r\n\r\n")
                    if sep and len(body) >= want_len:
                        break
                if not head.startswith(b"HTTP/1.1 200") or len(body) != want_len:
                    raise SystemExit(f"unexpected answer: {head[:60]!r}, {len(body)} body bytes")
                done += 1
    finally:
        for s in socks:
            s.close()
    return done


def free_ports(n):
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def pid_alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        return state not in ("Z", "X")
    except (OSError, IndexError):
        return False


def wait_http(port, path, pid, secs, want_len):
    deadline = time.monotonic() + secs
    last = "no attempt"
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            print(f"process {pid} exited before becoming ready ({last})", file=sys.stderr)
            return 1
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", path)
            resp = conn.getresponse()
            body = resp.read()
            conn.close()
            if resp.status == 200 and len(body) == want_len:
                return 0
            last = f"got status {resp.status}, {len(body)} body bytes"
        except OSError as e:
            last = f"{type(e).__name__}: {e}"
        time.sleep(0.05)
    print(f"not ready on 127.0.0.1:{port}{path} within {secs}s ({last})", file=sys.stderr)
    return 1


def cpu_busy(secs):
    """Per-CPU busy percentage over SECS seconds, from /proc/stat (all namespaces)."""
    def snap():
        d = {}
        with open("/proc/stat") as f:
            for line in f:
                if line.startswith("cpu") and line[3] != " ":
                    v = [int(x) for x in line.split()[1:]]
                    d[line.split()[0]] = (sum(v), v[3] + v[4])  # total, idle + iowait
        return d
    a = snap()
    time.sleep(secs)
    b = snap()
    out = []
    for cpu in a:
        total = b[cpu][0] - a[cpu][0]
        idle = b[cpu][1] - a[cpu][1]
        out.append((cpu, 100.0 * (total - idle) / total if total else 0.0))
    return out


# ---------------------------------------------------------------- wrk parsing

_TIME_SCALE_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}
_SIZE = {"B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4}


def _time_ms(text):
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text.strip())
    if not m:
        raise ValueError(f"bad wrk time {text!r}")
    return float(m.group(1)) * _TIME_SCALE_MS[m.group(2)]


def parse_wrk(text):
    """Return a dict with rps, p50_ms, p99_ms, requests, errors, valid, problems."""
    r = {"rps": None, "p50_ms": None, "p75_ms": None, "p90_ms": None, "p99_ms": None,
         "requests": None, "seconds": None, "errors": {}, "problems": []}
    in_dist = False
    for line in text.splitlines():
        s = line.strip()
        if s.startswith("Latency Distribution"):
            in_dist = True
            continue
        if in_dist:
            m = re.fullmatch(r"(\d+)%\s+(\S+)", s)
            if m:
                key = {"50": "p50_ms", "75": "p75_ms", "90": "p90_ms", "99": "p99_ms"}.get(m.group(1))
                if key:
                    r[key] = _time_ms(m.group(2))
                continue
            in_dist = False
        m = re.match(r"(\d+) requests in ([\d.]+\w+),", s)
        if m:
            r["requests"] = int(m.group(1))
            r["seconds"] = _time_ms(m.group(2)) / 1e3
            continue
        m = re.match(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", s)
        if m:
            for k, v in zip(("connect", "read", "write", "timeout"), m.groups()):
                if int(v):
                    r["errors"][k] = int(v)
            continue
        m = re.match(r"Non-2xx or 3xx responses: (\d+)", s)
        if m:
            if int(m.group(1)):
                r["errors"]["non-2xx/3xx"] = int(m.group(1))
            continue
        m = re.match(r"Requests/sec:\s+([\d.]+)", s)
        if m:
            r["rps"] = float(m.group(1))
            continue
        if s.startswith("unable to connect"):
            r["problems"].append(s)
    if r["rps"] is None:
        r["problems"].append("no Requests/sec line")
    if r["p50_ms"] is None or r["p99_ms"] is None:
        r["problems"].append("no latency distribution")
    if not r["requests"]:
        r["problems"].append("no requests completed")
    for k, v in r["errors"].items():
        r["problems"].append(f"{k} errors: {v}")
    r["valid"] = not r["problems"]
    return r


def cpu_during(path):
    """Per-CPU busy % from a .cpu file: /proc/stat cpuN lines, '--', the same again."""
    try:
        with open(path) as f:
            before, _, after = f.read().partition("--\n")
    except OSError:
        return {}

    def counters(text):
        d = {}
        for line in text.splitlines():
            f = line.split()
            if f and f[0].startswith("cpu"):
                v = [int(x) for x in f[1:]]
                d[f[0][3:]] = (sum(v), v[3] + v[4])
        return d
    a, b = counters(before), counters(after)
    out = {}
    for cpu in a:
        if cpu in b and b[cpu][0] > a[cpu][0]:
            total = b[cpu][0] - a[cpu][0]
            out[cpu] = 100.0 * (total - (b[cpu][1] - a[cpu][1])) / total
    return out


def load_run(path):
    try:
        with open(path) as f:
            return parse_wrk(f.read())
    except OSError as e:
        return {"rps": None, "p50_ms": None, "p99_ms": None, "errors": {},
                "problems": [f"cannot read {path}: {e}"], "valid": False}


def brief(path):
    r = load_run(path)
    if not r["valid"]:
        return "INVALID: " + "; ".join(r["problems"])
    return f"{r['rps']:>10.0f} req/s  p50 {fmt_ms(r['p50_ms'])}  p99 {fmt_ms(r['p99_ms'])}"


def expect_errors(r):
    """Turns a run whose every response was non-2xx from invalid to valid
    (and one with any 2xx into invalid)."""
    bad = r["errors"].pop("non-2xx/3xx", 0)
    r["problems"] = [p for p in r["problems"] if not p.startswith("non-2xx/3xx")]
    if r["requests"] and bad != r["requests"]:
        r["problems"].append(f"{r['requests'] - bad} of {r['requests']} responses were 2xx/3xx")
    r["valid"] = not r["problems"]


def medians(outdir, names, cpu, all_non2xx=()):
    """Per contender in NAMES: median req/s, p99 and proxy CPU per request
    over its valid rounds in OUTDIR (runs named NAME.rN.txt/.cpu), plus the
    problems of the invalid rounds. Contenders in ALL_NON2XX are meant to
    answer every request with an error status (a 404 scenario)."""
    runs, problems = {}, []
    for name in names:
        for path in sorted(glob.glob(os.path.join(outdir, f"{name}.r*.txt"))):
            r = load_run(path)
            if name in all_non2xx:
                expect_errors(r)
            rnd = re.search(r"\.r(\d+)\.txt$", path).group(1)
            if not r["valid"]:
                problems.append(f"{name} round {rnd}: " + "; ".join(r["problems"]))
                continue
            busy = cpu_during(path[:-4] + ".cpu").get(cpu)
            r["cpu_us"] = (busy / 100 * r["seconds"] * 1e6 / r["requests"]) if busy and name != "upstream" else None
            runs.setdefault(name, []).append(r)
    med = lambda xs: statistics.median(xs) if xs else None  # noqa: E731
    res = {n: {"rps": med([r["rps"] for r in rs]),
               "p99_ms": med([r["p99_ms"] for r in rs]),
               "cpu_us": med([r["cpu_us"] for r in rs if r["cpu_us"]])} for n, rs in runs.items()}
    return res, problems


def store_table(stores, runs, results):
    """Markdown lines: a row per (key, label) of STORES, a req/s and a p99
    column per (key, label) of RUNS, from RESULTS keyed "<store>-<run>"."""
    get = lambda n, k: (results.get(n) or {}).get(k)  # noqa: E731
    lines = ["| store | " + " | ".join(f"{label} req/s | p99" for _, label in runs) + " |",
             "|---|" + "---:|---:|" * len(runs)]
    for s, label in stores:
        cells = []
        for r, _ in runs:
            rps = get(f"{s}-{r}", "rps")
            cells += ["n/a" if rps is None else f"{rps:.0f}", fmt_ms(get(f"{s}-{r}", "p99_ms"))]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def finish_summary(outdir, lines, meta, problems, results):
    """Appends notes and problems to the summary lines, writes summary.md and
    results.json, prints the summary; returns 3 if some run was invalid."""
    if meta.get("notes"):
        lines.append(f"Notes: {meta['notes']}")
    if problems:
        lines += ["", "**Problems:** " + "; ".join(problems)]
    text = "\n".join(lines) + "\n"
    with open(os.path.join(outdir, "summary.md"), "w") as f:
        f.write(text)
    with open(os.path.join(outdir, "results.json"), "w") as f:
        json.dump(results, f, indent=2)
    print(text)
    return 3 if problems else 0


# ---------------------------------------------------------------- report


def fmt_ms(v):
    if v is None:
        return "n/a"
    return f"{v * 1000:.0f} us" if abs(v) < 1 else f"{v:.2f} ms"


def fmt_ratio(v):
    return "n/a" if v is None else f"{v:.2f}x"


def fmt_mib(kib):
    return "n/a" if kib is None else f"{kib / 1024:.1f} MiB"


def read_meta(path):
    meta = {}
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            if "=" in line:
                k, v = line.split("=", 1)
                meta[k] = v
    return meta


def _median(xs):
    xs = sorted(xs)
    n = len(xs)
    return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2



def workers_text(workers):
    """How many workers each proxy ran, in the report's words."""
    return "one worker each" if workers == "1" else f"{workers} workers each"

def report(manifest_path, meta_path, outdir):
    meta = read_meta(meta_path)
    scenarios, contenders = [], []
    rounds = {}  # (scenario, contender) -> [parsed run, ...]
    with open(manifest_path) as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) < 5:
                continue
            scen, cont, conns, rnd, raw = parts[:5]
            note = parts[5] if len(parts) > 5 else ""
            if scen not in scenarios:
                scenarios.append(scen)
            if cont not in contenders:
                contenders.append(cont)
            r = load_run(os.path.join(outdir, raw))
            if note:
                r["problems"].append(note)
                r["valid"] = False
            r.update(raw=raw, round=int(rnd), connections=int(conns))
            cpu = cpu_during(os.path.join(outdir, raw[: -len(".txt")] + ".cpu"))
            r["proxy_cpu_busy"] = cpu.get(meta.get("proxy_cpu", "0"))
            r["load_cpu_busy"] = cpu.get(meta.get("load_cpu", "1"))
            # CPU time the proxy spent per request: its pinned CPU's busy share
            # over the request rate. Steadier than req/s on a host that stalls.
            busy = r["proxy_cpu_busy"]
            r["cpu_us"] = busy / 100 * 1e6 / r["rps"] if busy is not None and r.get("rps") else None
            rounds.setdefault((scen, cont), []).append(r)

    # A contender's figure for a scenario is the median over its rounds, and
    # exists only if every round was clean: a run with errors is no result.
    results = {}
    for key, rs in rounds.items():
        bad = [f"round {r['round']}: {'; '.join(r['problems'])}" for r in rs if not r["valid"]]
        agg = {"connections": rs[0]["connections"], "rounds": len(rs), "valid": not bad,
               "problems": bad}
        if not bad:
            for k in ("rps", "p50_ms", "p99_ms"):
                agg[k] = _median([r[k] for r in rs])
            cpu_us = [r["cpu_us"] for r in rs if r.get("cpu_us") is not None]
            agg["cpu_us"] = _median(cpu_us) if cpu_us else None
            agg["rps_min"] = min(r["rps"] for r in rs)
            agg["rps_max"] = max(r["rps"] for r in rs)
            agg["rps_mean"] = statistics.mean(r["rps"] for r in rs)
            agg["rps_sd"] = statistics.stdev(r["rps"] for r in rs) if len(rs) > 1 else 0.0
        results[key] = agg

    def get(scen, cont, key):
        r = results.get((scen, cont))
        return r[key] if r and r["valid"] else None

    gw_rss = int(meta["gateway_vmhwm_kib"]) if meta.get("gateway_vmhwm_kib") else None
    ngx_rss = int(meta["nginx_worker_vmhwm_kib"]) if meta.get("nginx_worker_vmhwm_kib") else None

    out = []
    out.append(f"# Gateway benchmark, {meta.get('date', '?')} on {meta.get('host', '?')}")
    out.append("")
    out.append(f"- machine: {meta.get('cpu', '?')}, {meta.get('nproc', '?')} cores, "
               f"kernel {meta.get('kernel', '?')}")
    out.append(f"- tools: {meta.get('wrk_version', '?')}; {meta.get('nginx_version', '?')}")
    out.append(f"- gateway: {meta.get('gateway', '?')}")
    out.append(f"- wrk: `-t{meta.get('threads')} -d{meta.get('duration')} --latency`, "
               f"warm-up {meta.get('warmup')} before each measured run, pinned to CPU "
               f"{meta.get('load_cpu')} with the bare upstream; proxies pinned to CPU "
               f"{meta.get('proxy_cpu')}, {workers_text(meta.get('workers', '1'))}")
    out.append(f"- {meta.get('rounds', '?')} rounds, contender order rotated each round; "
               f"figures are medians over the rounds")
    out.append(f"- request: `GET /bench`, HTTP/1.1 keep-alive, {meta.get('body_bytes')} B response body")
    if meta.get("notes"):
        for n in meta["notes"].split("|"):
            out.append(f"- note: {n}")
    out.append("")

    out.append("## Results (medians)")
    out.append("")
    out.append("| scenario | contender | req/s | req/s mean ± sd | req/s min..max | p50 | p99 | proxy CPU µs/req |")
    out.append("|---|---|---:|---:|---:|---:|---:|---:|")
    for scen in scenarios:
        for cont in contenders:
            r = results.get((scen, cont))
            if r is None:
                continue
            if r["valid"]:
                out.append(f"| {scen} | {cont} | {r['rps']:.0f} | "
                           f"{r['rps_mean']:.0f} ± {r['rps_sd']:.0f} | "
                           f"{r['rps_min']:.0f}..{r['rps_max']:.0f} | "
                           f"{fmt_ms(r['p50_ms'])} | {fmt_ms(r['p99_ms'])} | "
                           f"{'-' if cont == 'upstream' or r['cpu_us'] is None else format(r['cpu_us'], '.1f')} |")
            else:
                out.append(f"| {scen} | {cont} | INVALID | {'; '.join(r['problems'])} | - | - | - | - |")
    out.append("")

    out.append("## Ratios")
    out.append("")
    out.append("| scenario | gateway / nginx req/s | gateway / upstream req/s | "
               "nginx / upstream req/s | p99 added, gateway | p99 added, nginx | "
               "CPU per request, gateway / nginx |")
    out.append("|---|---:|---:|---:|---:|---:|---:|")
    derived = {}
    for scen in scenarios:
        up, gw, ng = (get(scen, c, "rps") for c in ("upstream", "gateway", "nginx"))
        up99, gw99, ng99 = (get(scen, c, "p99_ms") for c in ("upstream", "gateway", "nginx"))
        d = {
            "gateway_over_nginx_rps": gw / ng if gw and ng else None,
            "gateway_over_upstream_rps": gw / up if gw and up else None,
            "nginx_over_upstream_rps": ng / up if ng and up else None,
            "gateway_p99_added_ms": gw99 - up99 if gw99 is not None and up99 is not None else None,
            "nginx_p99_added_ms": ng99 - up99 if ng99 is not None and up99 is not None else None,
        }
        gw_cpu, ng_cpu = get(scen, "gateway", "cpu_us"), get(scen, "nginx", "cpu_us")
        d["gateway_over_nginx_cpu"] = gw_cpu / ng_cpu if gw_cpu and ng_cpu else None
        derived[scen] = d
        out.append(f"| {scen} | {fmt_ratio(d['gateway_over_nginx_rps'])} | "
                   f"{fmt_ratio(d['gateway_over_upstream_rps'])} | "
                   f"{fmt_ratio(d['nginx_over_upstream_rps'])} | "
                   f"{fmt_ms(d['gateway_p99_added_ms'])} | {fmt_ms(d['nginx_p99_added_ms'])} | "
                   f"{fmt_ratio(d['gateway_over_nginx_cpu'])} |")
    out.append("")

    if any(get(scen, "limited", "rps") for scen in scenarios):
        out.append("## The rate limiter")
        out.append("")
        out.append("`limited` is the gateway with a per-client policy on the route so generous it never")
        out.append("refuses: what checking a limit costs a request that passes.")
        out.append("")
        out.append("| scenario | limited / gateway req/s | CPU per request, limited / gateway |")
        out.append("|---|---:|---:|")
        for scen in scenarios:
            lim, gw = get(scen, "limited", "rps"), get(scen, "gateway", "rps")
            lim_cpu, gw_cpu = get(scen, "limited", "cpu_us"), get(scen, "gateway", "cpu_us")
            derived[scen]["limited_over_gateway_rps"] = lim / gw if lim and gw else None
            derived[scen]["limited_over_gateway_cpu"] = lim_cpu / gw_cpu if lim_cpu and gw_cpu else None
            out.append(f"| {scen} | {fmt_ratio(derived[scen]['limited_over_gateway_rps'])} | "
                       f"{fmt_ratio(derived[scen]['limited_over_gateway_cpu'])} |")
        out.append("")

    out.append("## Every run")
    out.append("")
    out.append("Busy % of the proxy CPU and of the load CPU (wrk + bare upstream) during")
    out.append("each measured run. A proxy run should have the proxy CPU near 100 %; when")
    out.append("the load CPU is the saturated one instead, the run measured the load side.")
    out.append("")
    out.append("| scenario | contender | round | req/s | p50 | p99 | proxy CPU | load CPU | raw output |")
    out.append("|---|---|---:|---:|---:|---:|---:|---:|---|")

    def pct(v):
        return "n/a" if v is None else f"{v:.0f}%"
    for scen in scenarios:
        for cont in contenders:
            for r in rounds.get((scen, cont), []):
                cpus = f"{pct(r.get('proxy_cpu_busy'))} | {pct(r.get('load_cpu_busy'))}"
                if r["valid"]:
                    out.append(f"| {scen} | {cont} | {r['round']} | {r['rps']:.0f} | "
                               f"{fmt_ms(r['p50_ms'])} | {fmt_ms(r['p99_ms'])} | {cpus} | "
                               f"{r['raw']} |")
                else:
                    out.append(f"| {scen} | {cont} | {r['round']} | INVALID | - | - | {cpus} | "
                               f"{r['raw']}: {'; '.join(r['problems'])} |")
    out.append("")

    out.append("## Peak RSS (VmHWM after all runs)")
    out.append("")
    out.append(f"- gateway: {fmt_mib(gw_rss)}")
    out.append(f"- nginx proxy worker (for reference): {fmt_mib(ngx_rss)}")
    if meta.get("gateway_threads"):
        out.append(f"- gateway threads: {meta['gateway_threads']}, "
                   f"CPUs allowed: {meta.get('gateway_cpus', '?')}")
    out.append("")

    # Targets from issue "Gateway core", point 9.
    targets = []

    def verdict(ok):
        return "n/a" if ok is None else ("PASS" if ok else "FAIL")

    for scen in scenarios:
        conns = results[(scen, contenders[0])]["connections"]
        if conns in (64, 256):
            v = derived[scen]["gateway_over_nginx_rps"]
            targets.append((f"{scen}: gateway req/s >= 1.0x nginx", fmt_ratio(v),
                            verdict(None if v is None else v >= 1.0)))
        if conns == 64:
            v = derived[scen]["gateway_p99_added_ms"]
            targets.append((f"{scen}: p99 added over upstream < 1 ms", fmt_ms(v),
                            verdict(None if v is None else v < 1.0)))
    targets.append(("gateway peak RSS < 30 MiB", fmt_mib(gw_rss),
                    verdict(None if gw_rss is None else gw_rss < 30 * 1024)))
    out.append("## Targets")
    out.append("")
    out.append("| target | value | verdict |")
    out.append("|---|---:|---|")
    for name, val, v in targets:
        out.append(f"| {name} | {val} | {v} |")
    out.append("")

    text = "\n".join(out)
    with open(os.path.join(outdir, "summary.md"), "w") as f:
        f.write(text)
    doc = {
        "meta": meta,
        "results": [dict(scenario=s, contender=c, **r) for (s, c), r in results.items()],
        "runs": [dict(scenario=s, contender=c, **r) for (s, c), rs in rounds.items() for r in rs],
        "derived": derived,
        "gateway_vmhwm_kib": gw_rss,
        "nginx_worker_vmhwm_kib": ngx_rss,
        "targets": [dict(target=n, value=v, verdict=x) for n, v, x in targets],
    }
    with open(os.path.join(outdir, "results.json"), "w") as f:
        json.dump(doc, f, indent=2)
    print(text)
    invalid = any(not r["valid"] for r in results.values())
    failed = any(x == "FAIL" for _, _, x in targets)
    return 3 if invalid else (4 if failed else 0)


def main(argv):
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    cmd, args = argv[1], argv[2:]
    if cmd == "free-ports":
        print(" ".join(str(p) for p in free_ports(int(args[0]))))
        return 0
    if cmd == "wait-http":
        port, path, pid, secs, want = args
        return wait_http(int(port), path, int(pid), float(secs), int(want))
    if cmd == "cpu-busy":
        busy = cpu_busy(float(args[0]))
        print(" ".join(f"{c}={b:.0f}%" for c, b in busy))
        limit = float(args[1]) if len(args) > 1 else 101.0
        return 1 if any(b > limit for _, b in busy) else 0
    if cmd == "parse":
        print(json.dumps(load_run(args[0]), indent=2))
        return 0
    if cmd == "brief":
        print(brief(args[0]))
        return 0
    if cmd == "report":
        return report(*args)
    if cmd == "fixed-load":
        port, path, conns, n, want = args
        print(fixed_load(int(port), path, int(conns), int(n), int(want)))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
