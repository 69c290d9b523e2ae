#!/usr/bin/env python3
"""Chart of one benchmark run: bench/chart.py OUTDIR [TITLE] writes
OUTDIR/chart.png from OUTDIR/results.json (written by run.sh's and
authz.sh's reports): requests per second and proxy CPU per request of every
contender, side by side, per scenario. run.sh and authz.sh call it last."""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from soak_plot import load_matplotlib  # noqa: E402


def series(results):
    """{scenario: [(contender, rps, cpu_us)]} from either report's shape."""
    out = {}
    if isinstance(results, list):  # run.sh: one entry per scenario and contender
        for r in results:
            out.setdefault(r["scenario"], []).append((r["contender"], r.get("rps"), r.get("cpu_us")))
    else:  # authz.sh: one scenario, contender -> figures
        out["authorizer, 64 connections"] = [
            (name, r.get("rps"), r.get("cpu_us")) for name, r in results.items() if r
        ]
    return out


def main(outdir, title):
    with open(os.path.join(outdir, "results.json")) as f:
        data = json.load(f)
    scen = series(data["results"])
    plt = load_matplotlib()
    fig, axes = plt.subplots(len(scen), 2, figsize=(11, 3.2 * len(scen)), squeeze=False)
    for row, (name, rows) in zip(axes, scen.items()):
        names = [c for c, _, _ in rows]
        rps = [v or 0 for _, v, _ in rows]
        cpu = [v or 0 for _, _, v in rows]
        colors = ["#d62728" if n.startswith("gateway") else "#7f7f7f" for n in names]
        row[0].barh(names, [v / 1000 for v in rps], color=colors)
        row[0].set_xlabel("thousand requests per second (more is better)")
        row[0].set_title(name, loc="left", fontsize=10)
        for i, v in enumerate(rps):
            row[0].text(v / 1000, i, f" {v / 1000:.1f}k", va="center", fontsize=8)
        row[1].barh(names, cpu, color=colors)
        row[1].set_xlabel("proxy CPU per request, µs (less is better)")
        for i, v in enumerate(cpu):
            if v:
                row[1].text(v, i, f" {v:.1f}", va="center", fontsize=8)
        for ax in row:
            ax.invert_yaxis()
            ax.margins(x=0.15)
    meta = data.get("meta", {})
    fig.suptitle(f"{title} — {meta.get('date', '')}", fontsize=11)
    fig.tight_layout()
    path = os.path.join(outdir, "chart.png")
    fig.savefig(path, dpi=110)
    print(f"chart: {path}")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit("usage: bench/chart.py OUTDIR [TITLE]")
    main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "benchmark")
