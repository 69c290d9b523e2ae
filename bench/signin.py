#!/usr/bin/env python3
"""Report for bench/signin.sh (Python standard library only).

  brief OUTDIR ROUND   one line per round on stderr
  report OUTDIR        summary.md + results.json from every round, printed
"""

import glob
import os
import re
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import finish_summary, parse_wrk, read_meta  # noqa: E402


def parse_hey(text):
    """rps, p50/p90/p99 in ms, status counts and errors of one `hey` run."""
    r = {"rps": None, "p50_ms": None, "p90_ms": None, "p99_ms": None, "statuses": {}, "problems": []}
    m = re.search(r"Requests/sec:\s+([\d.]+)", text)
    if m:
        r["rps"] = float(m.group(1))
    for pct, secs in re.findall(r"(\d+)%+ in ([\d.]+) secs", text):
        key = {"50": "p50_ms", "90": "p90_ms", "99": "p99_ms"}.get(pct)
        if key:
            r[key] = float(secs) * 1000
    for code, n in re.findall(r"\[(\d{3})\]\s+(\d+) responses", text):
        r["statuses"][code] = int(n)
    if "Error distribution" in text:
        r["problems"].append("request errors (see the raw file)")
    bad = {c: n for c, n in r["statuses"].items() if c != "200"}
    if bad:
        r["problems"].append(f"non-200 answers: {bad}")
    if r["p99_ms"] is None:
        r["problems"].append("no latency distribution")
    return r


def load_round(outdir, rnd):
    def read(name):
        with open(os.path.join(outdir, f"{name}.r{rnd}.txt")) as f:
            return f.read()
    mean, median = (float(x) for x in read("hash").split())
    return {
        "hash_ms": mean,
        "hash_median_ms": median,
        "idle": parse_hey(read("probe-idle")),
        "storm_alone": parse_wrk(read("storm-alone")),
        "storm": parse_hey(read("probe-storm")),
        "storm_mixed": parse_wrk(read("storm-mixed")),
    }


def brief(outdir, rnd):
    r = load_round(outdir, rnd)
    print(f"[bench] round {rnd}: hash {r['hash_ms']:.1f} ms, sign-ins/s {r['storm_alone']['rps']}, "
          f"probe p99 idle {r['idle']['p99_ms']:.2f} ms, during storm {r['storm']['p99_ms']:.2f} ms",
          file=sys.stderr)


def report(outdir):
    meta = read_meta(os.path.join(outdir, "meta.env"))
    rounds = sorted(int(m.group(1)) for p in glob.glob(os.path.join(outdir, "hash.r*.txt"))
                    if (m := re.search(r"hash\.r(\d+)\.txt$", p)))
    data = [load_round(outdir, n) for n in rounds]
    problems = []
    for n, r in zip(rounds, data):
        for k in ("idle", "storm", "storm_alone", "storm_mixed"):
            problems += [f"round {n} {k}: {p}" for p in r[k]["problems"]]
    med = statistics.median
    threads = int(meta["hashing_threads"])
    hash_ms = med(r["hash_ms"] for r in data)
    hash_median = med(r["hash_median_ms"] for r in data)
    bound = threads * 1000 / hash_ms
    signins = med(r["storm_alone"]["rps"] for r in data)
    signins_mixed = med(r["storm_mixed"]["rps"] for r in data)
    idle = {k: med(r["idle"][k] for r in data) for k in ("p50_ms", "p90_ms", "p99_ms")}
    storm = {k: med(r["storm"][k] for r in data) for k in ("p50_ms", "p90_ms", "p99_ms")}
    eff = signins / bound
    p99_ratio = storm["p99_ms"] / idle["p99_ms"]
    res = {
        "meta": meta, "rounds": data, "hash_ms": hash_ms, "bound_per_s": bound,
        "signins_per_s": signins, "signins_per_s_with_probe": signins_mixed,
        "efficiency": eff, "probe_idle": idle, "probe_storm": storm, "p99_ratio": p99_ratio,
        "problems": problems,
    }
    ok = lambda c: "met" if c else "MISSED"  # noqa: E731
    lines = [
        f"# Sign-in benchmark, {meta.get('date', '?')}",
        "",
        f"{meta.get('cpu', '?')}, {meta.get('nproc', '?')} CPUs; gateway: {meta.get('gateway', '?')}; "
        f"bcrypt cost {meta['bcrypt_cost']}, {threads} hashing thread(s); {len(data)} rounds of "
        f"{meta['duration']}, medians. Storm: wrk, {meta['storm_connections']} connections, "
        f"{meta['users']} users in turn. Probe: hey, {meta['probe_rate']} GET/s through an "
        f"`auth: none` route to a bare nginx upstream.",
        "",
        "| figure | value | target |",
        "|---|---:|---|",
        f"| one bcrypt hash (cost {meta['bcrypt_cost']}), mean / median of 30 | {hash_ms:.1f} / {hash_median:.1f} ms | |",
        f"| bound = {threads} thread(s) / mean hash time | {bound:.2f} sign-ins/s | |",
        f"| sign-ins/s, storm alone | {signins:.2f} ({eff:.0%} of the bound) | >= 85%: {ok(eff >= 0.85)} |",
        f"| sign-ins/s, storm with the probe running | {signins_mixed:.2f} | |",
        f"| proxied p50 / p90 / p99, idle | {idle['p50_ms']:.2f} / {idle['p90_ms']:.2f} / {idle['p99_ms']:.2f} ms | |",
        f"| proxied p50 / p90 / p99, during the storm | {storm['p50_ms']:.2f} / {storm['p90_ms']:.2f} / {storm['p99_ms']:.2f} ms | |",
        f"| p99 during storm / idle | {p99_ratio:.2f}x | <= 3x: {ok(p99_ratio <= 3)} |",
        "",
        "Per round (hash ms, sign-ins/s alone, p99 idle, p99 storm): " + "; ".join(
            f"{r['hash_ms']:.1f}, {r['storm_alone']['rps']:.2f}, {r['idle']['p99_ms']:.2f}, {r['storm']['p99_ms']:.2f}"
            for r in data),
        f"Gateway peak RSS: {int(meta.get('gateway_vmhwm_kib') or 0) / 1024:.1f} MiB.",
    ]
    return finish_summary(outdir, lines, meta, problems, res)


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "brief":
        brief(args[0], int(args[1]))
    elif cmd == "report":
        sys.exit(report(args[0]))
    else:
        sys.exit(f"unknown subcommand {cmd}")
