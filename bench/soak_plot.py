#!/usr/bin/env python3
"""Plot and judge a soak run: bench/soak_plot.py SOAK.CSV OUT.PNG [--label TEXT]

Reads the per-second samples written by bench/soak.py (time_s, rss_kib, fds,
requests_total, threads, gateway_cpu_pct, load_cpu_pct, store_kib, fd_client,
fd_upstream, fd_other, half_dead, phase), writes a PNG
with two panels (RSS in MiB and open fds over time), prints the figures and
the verdict, and exits 1 when memory or fds are not flat (2 on bad input).

Verdict. Let D be the length of the load phase. After a warm-up of
W = min(60 s, D/6) (caches, pools and allocator arenas filling up), compare
the median over the first window [W, W+X] with the median over the last
window [D-X, D], X = min(60 s, D/4). Medians, because single samples jump
with the traffic in flight at that second.
"""

import argparse
import csv
import statistics
import subprocess
import sys

# Thresholds, and why:
# - RSS: at most +20 % between the two windows. The gateway runs at
#   ~10-25 MiB here; its allocator (mimalloc) keeps freed pages for reuse
#   and the in-flight work varies from second to second, so a healthy run
#   moves by a few percent, never by a fifth. A real leak is far larger: at
#   ~220 requests/s, 100 leaked bytes per request is ~1.3 MiB a minute,
#   +50 % or more over a ten-minute run on a ~15 MiB process. The
#   decision cache (cache_ttl 30 s in the soak config), the invalid-token
#   cache (10 s), the idle/slow connections (20 s / 5 s) all reach their
#   steady size inside the warm-up, so they do not count as growth.
# - fds. The total is mostly TCP connections: the load's own connections to
#   the gateway and the gateway's pool to the upstream, both as many as the
#   requests in flight, which on this 2-core VM swing between ~50 and ~350
#   with the host's stalls (and with a compile on the other core). So the
#   total is plotted and its window medians printed, but the gates are on
#   what a leak would move and the load does not:
#   * fds that are not client or upstream connections (listeners, epoll,
#     eventfds, timers, the store and key files, pipes): at most +10
#     between the windows (their steady number is ~15; a leak of one per
#     request, sign-in or reload would add thousands);
#   * half-dead sockets, in CLOSE_WAIT (the peer closed, the gateway did not)
#     or gone from /proc/net/tcp while the gateway still holds the fd (reset):
#     how a leaked connection looks once the client or upstream gives up.
#     Median over the last window at most 10 (each exists for milliseconds,
#     between the peer's close or reset and the gateway's read of it);
#   * after the load, with every client connection closed and the upstream
#     pool idled out, at most +10 fds against the idle gateway at the start:
#     anything leaked is still there.
#   A CSV without the fd classes (an older soak.py) is judged on the total.
RSS_GROWTH_PCT_MAX = 20.0
FD_GROWTH_MAX = 10
HALF_DEAD_MAX = 10


def load_matplotlib():
    try:
        import matplotlib
    except ImportError:
        print("matplotlib missing: pip install matplotlib", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "matplotlib"], check=True)
        import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def read(path):
    rows = []
    with open(path) as f:
        for r in csv.DictReader(f):
            if not r["rss_kib"]:  # the gateway was gone at this sample
                continue
            rows.append({
                "t": float(r["time_s"]),
                "rss": int(r["rss_kib"]) / 1024.0,
                "fds": int(r["fds"]),
                "req": int(r["requests_total"]),
                "threads": int(r["threads"]),
                "gw_cpu": float(r["gateway_cpu_pct"]),
                "load_cpu": float(r["load_cpu_pct"]),
                "store": int(r["store_kib"]) if r.get("store_kib") else None,
                "client": int(r["fd_client"]) if r.get("fd_client") else None,
                "upstream": int(r["fd_upstream"]) if r.get("fd_upstream") else None,
                "other": int(r["fd_other"]) if r.get("fd_other") else None,
                "half_dead": int(r["half_dead"]) if r.get("half_dead") else None,
                "phase": r["phase"],
            })
    return rows


def slope_per_hour(xs, ys):
    if len(xs) < 3:
        return 0.0
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return 3600.0 * sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / den if den else 0.0


def main():
    p = argparse.ArgumentParser()
    p.add_argument("csv")
    p.add_argument("png")
    p.add_argument("--label", default="", help="extra text for the title (binary, date)")
    a = p.parse_args()

    rows = read(a.csv)
    load = [r for r in rows if r["phase"] == "load"]
    if len(load) < 10:
        print(f"too few samples in the load phase ({len(load)})", file=sys.stderr)
        return 2
    dur = load[-1]["t"]
    warm = min(60.0, dur / 6)
    win = min(60.0, dur / 4)
    first = [r for r in load if warm <= r["t"] <= warm + win]
    last = [r for r in load if dur - win <= r["t"] <= dur]
    after = [r for r in rows if r["phase"] == "after"]
    steady = [r for r in load if r["t"] >= warm]
    reqs = load[-1]["req"]
    total_reqs = rows[-1]["req"]

    def med(rs, k):
        return statistics.median(r[k] for r in rs)

    rss_a, rss_b = med(first, "rss"), med(last, "rss")
    fd_a, fd_b = med(first, "fds"), med(last, "fds")
    rss_pct = 100.0 * (rss_b - rss_a) / rss_a
    fd_growth = fd_b - fd_a
    start = rows[0]
    rmax = max(rows, key=lambda r: r["rss"])
    fmax = max(rows, key=lambda r: r["fds"])
    after_fds = statistics.median(r["fds"] for r in after[-5:]) if after else None
    after_rss = statistics.median(r["rss"] for r in after[-5:]) if after else None
    xs = [r["t"] for r in steady]

    classes = all(r["other"] is not None for r in first + last)
    if classes:
        oth_a, oth_b = med(first, "other"), med(last, "other")
        cw_b = med(last, "half_dead")
        cw_max = max(r["half_dead"] for r in rows if r["half_dead"] is not None)
        ok_fd = oth_b - oth_a <= FD_GROWTH_MAX and cw_b <= HALF_DEAD_MAX
    else:
        ok_fd = fd_growth <= FD_GROWTH_MAX
    ok_rss = rss_pct <= RSS_GROWTH_PCT_MAX
    ok_after = after_fds is None or after_fds - start["fds"] <= FD_GROWTH_MAX
    flat = ok_rss and ok_fd and ok_after

    lines = [
        f"load phase: {dur:.0f} s, {reqs} requests ({reqs / dur:.0f}/s), {total_reqs} with the drain; "
        f"warm-up {warm:.0f} s, windows of {win:.0f} s: [{warm:.0f}, {warm + win:.0f}] vs "
        f"[{dur - win:.0f}, {dur:.0f}] s",
        f"CPU during the load (mean, % of one core): gateway {statistics.fmean(r['gw_cpu'] for r in load[1:]):.1f}, "
        f"load generator {statistics.fmean(r['load_cpu'] for r in load[1:]):.1f}; gateway threads "
        f"{start['threads']} at start, {load[-1]['threads']} at the end, max {max(r['threads'] for r in rows)}",
        f"RSS (MiB): start {start['rss']:.1f}, end of load {load[-1]['rss']:.1f}, max {rmax['rss']:.1f} "
        f"(t={rmax['t']:.0f} s)" + (f", after {after[-1]['t'] - dur:.0f} s idle {after_rss:.1f}" if after else ""),
        f"fds: start {start['fds']}, end of load {load[-1]['fds']}, max {fmax['fds']} (t={fmax['t']:.0f} s)"
        + (f", after {after[-1]['t'] - dur:.0f} s idle {after_fds:.0f}" if after else ""),
        f"RSS median first window {rss_a:.2f} MiB -> last window {rss_b:.2f} MiB: {rss_pct:+.1f} % "
        f"(limit +{RSS_GROWTH_PCT_MAX:.0f} %): {'PASS' if ok_rss else 'FAIL'}",
    ]
    if classes:
        lines += [
            f"fds median first window {fd_a:.0f} -> last window {fd_b:.0f}: {fd_growth:+.0f} (for information: "
            f"client connections {med(first, 'client'):.0f} -> {med(last, 'client'):.0f}, upstream "
            f"{med(first, 'upstream'):.0f} -> {med(last, 'upstream'):.0f}; they follow the requests in flight)",
            f"fds other than connections, median {oth_a:.0f} -> {oth_b:.0f}: {oth_b - oth_a:+.0f} "
            f"(limit +{FD_GROWTH_MAX}); half-dead sockets (CLOSE_WAIT or reset), median over the last "
            f"window {cw_b:.0f} (limit {HALF_DEAD_MAX}), max {cw_max}: {'PASS' if ok_fd else 'FAIL'}",
        ]
    else:
        lines.append(f"fds median first window {fd_a:.0f} -> last window {fd_b:.0f}: {fd_growth:+.0f} "
                     f"(limit +{FD_GROWTH_MAX}): {'PASS' if ok_fd else 'FAIL'}")
    if after_fds is not None:
        lines.append(f"fds after the load, idle, vs start: {after_fds:.0f} vs {start['fds']} "
                     f"(limit +{FD_GROWTH_MAX}): {'PASS' if ok_after else 'FAIL'}")
    if start["store"] is not None and load[-1]["store"] is not None:
        lines.append(f"store file (redb, disk blocks): {start['store'] / 1024:.1f} MiB at start, "
                     f"{load[-1]['store'] / 1024:.1f} MiB at the end of the load")
    lines.append(f"trend after warm-up (least squares, for information): RSS "
                 f"{slope_per_hour(xs, [r['rss'] for r in steady]):+.2f} MiB/h, fds "
                 f"{slope_per_hour(xs, [r['fds'] for r in steady]):+.1f}/h")
    lines.append(f"verdict: {'FLAT' if flat else 'NOT FLAT'}")
    print("\n".join(lines))

    plt = load_matplotlib()
    fig, (ax1, ax2) = plt.subplots(2, 1, sharex=True, figsize=(11, 7), dpi=110)
    t = [r["t"] for r in rows]
    end = rows[-1]["t"]
    for ax in (ax1, ax2):
        ax.axvspan(0, warm, color="0.85", lw=0, label="warm-up")
        ax.axvspan(warm, warm + win, color="#cfe3f7", lw=0, label="first window")
        ax.axvspan(dur - win, dur, color="#d5efd0", lw=0, label="last window")
        if end > dur:
            ax.axvspan(dur, end, color="#fbe3c8", lw=0, label="drain + idle (no load)")
        ax.grid(True, alpha=0.35)
    ax1.plot(t, [r["rss"] for r in rows], color="#1f4e8c", lw=1.1, label="VmRSS")
    ax1.hlines([rss_a], warm, warm + win, colors="#1f4e8c", linestyles="--", lw=1)
    ax1.hlines([rss_b], dur - win, dur, colors="#1f4e8c", linestyles="--", lw=1)
    ax1.set_ylabel("RSS (MiB)")
    ax1.set_ylim(0, max(r["rss"] for r in rows) * 1.25)
    ax1.set_title(f"RSS: median {rss_a:.1f} -> {rss_b:.1f} MiB ({rss_pct:+.1f} %, limit +{RSS_GROWTH_PCT_MAX:.0f} %)",
                  fontsize=10)
    ax1.legend(loc="lower right", fontsize=8, ncol=5)
    ax2.plot(t, [r["fds"] for r in rows], color="#8c3b1f", lw=1.0, label="open fds (all)")
    if classes:
        cr = [r for r in rows if r["other"] is not None]
        ct = [r["t"] for r in cr]
        ax2.plot(ct, [r["client"] for r in cr], color="#d08c60", lw=0.7, label="client connections")
        ax2.plot(ct, [r["upstream"] for r in cr], color="#6a8f3c", lw=0.7, label="upstream connections")
        ax2.plot(ct, [r["other"] for r in cr], color="#222222", lw=1.2, label="other fds")
        ax2.plot(ct, [r["half_dead"] for r in cr], color="#b00020", lw=1.0, ls=":", label="half-dead sockets")
        ax2.legend(handles=ax2.get_lines(), loc="upper left", fontsize=8, ncol=5)
    ax2.hlines([fd_a], warm, warm + win, colors="#8c3b1f", linestyles="--", lw=1)
    ax2.hlines([fd_b], dur - win, dur, colors="#8c3b1f", linestyles="--", lw=1)
    ax2.set_ylabel("open file descriptors")
    ax2.set_ylim(0, max(r["fds"] for r in rows) * 1.3)
    ax2.set_xlabel("time since the load started (s)")
    if classes:
        ax2.set_title(f"fds: all {fd_a:.0f} -> {fd_b:.0f} (median; follows the load); other than connections "
                      f"{oth_a:.0f} -> {oth_b:.0f} (limit +{FD_GROWTH_MAX}); half-dead max {cw_max}", fontsize=10)
    else:
        ax2.set_title(f"fds: median {fd_a:.0f} -> {fd_b:.0f} ({fd_growth:+.0f}, limit +{FD_GROWTH_MAX})", fontsize=10)
    fig.suptitle(f"gateway soak: {dur:.0f} s of mixed load, {reqs:,} requests ({reqs / dur:.0f}/s) - "
                 f"{'flat' if flat else 'NOT FLAT'}" + (f"\n{a.label}" if a.label else ""), fontsize=12)
    fig.tight_layout()
    fig.savefig(a.png)
    print(f"plot: {a.png}")
    return 0 if flat else 1


if __name__ == "__main__":
    sys.exit(main())
