#!/usr/bin/env python3
"""Compares annulus-bench runs of several builds of the same benchmark.

  compare_builds.py [--reference NAME] DIR BUILD...

DIR holds one annulus-bench output directory per build and round, named
BUILD-ROUND (results.csv inside). For every annulus curve (index and build
parameters) it reads single-thread QPS at recall 0.90, 0.95 and 0.99 off the
curve's Pareto frontier, as annulus-bench's summary.md does, takes the median
over rounds, and prints each build's QPS and its ratio to the reference build;
then the same for build time (annulus-bench times each build once per run)
and for batch QPS.
"""
import argparse
import csv
import glob
import math
import os
import statistics
import sys

TARGETS = (0.90, 0.95, 0.99)


def frontier(points):
    """Points no other beats on both recall and QPS, by rising recall."""
    out = []
    for recall, qps in sorted(points, key=lambda p: (-p[0], -p[1])):
        if not out or qps > out[-1][1]:
            out.append((recall, qps))
    return out[::-1]


def qps_at(front, target):
    for i, (recall, qps) in enumerate(front):
        if recall < target:
            continue
        if i == 0 or recall == target:
            return qps
        (r0, q0), (r1, q1) = front[i - 1], front[i]
        t = (target - r0) / (r1 - r0)
        return math.exp(math.log(q0) + t * (math.log(q1) - math.log(q0)))
    return None


def curves(path):
    """{curve: (Pareto frontier, build seconds, best batch QPS at recall >= 0.95)}
    for the annulus curves of one run."""
    by_curve, build, batch = {}, {}, {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            if row["library"] != "annulus":
                continue
            key = f'{row["index"]} {row["build_params"]}'.strip()
            by_curve.setdefault(key, []).append((float(row["recall"]), float(row["qps_1t"])))
            build[key] = float(row["build_s"])
            if float(row["recall"]) >= 0.95:
                batch[key] = max(batch.get(key, 0.0), float(row["qps_all"]))
    return {k: (frontier(v), build[k], batch.get(k)) for k, v in by_curve.items()}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reference", default="native")
    ap.add_argument("dir")
    ap.add_argument("builds", nargs="+")
    a = ap.parse_args()
    qps = {}  # (curve, target, build) -> [qps per round]
    build_s = {}  # (curve, build) -> [build seconds per round]
    batch = {}  # (curve, build) -> [batch QPS per round]
    for build in a.builds:
        runs = sorted(glob.glob(os.path.join(a.dir, f"{build}-*", "results.csv")))
        if not runs:
            sys.exit(f"compare_builds.py: no {build}-*/results.csv under {a.dir}")
        for run in runs:
            for curve, (front, seconds, batch_qps) in curves(run).items():
                build_s.setdefault((curve, build), []).append(seconds)
                if batch_qps:
                    batch.setdefault((curve, build), []).append(batch_qps)
                for t in TARGETS:
                    v = qps_at(front, t)
                    if v is not None:
                        qps.setdefault((curve, t, build), []).append(v)
    names = sorted({c for c, _, _ in qps})
    print(f"median single-thread QPS over rounds; ratio = build / {a.reference}\n")
    print("| curve | recall | " + " | ".join(a.builds) + " | " +
          " | ".join(f"{b} / {a.reference}" for b in a.builds if b != a.reference) + " |")
    print("|---|---|" + "---|" * (2 * len(a.builds) - 1))
    for curve in names:
        for t in TARGETS:
            med = {b: statistics.median(qps[(curve, t, b)]) for b in a.builds if (curve, t, b) in qps}
            if a.reference not in med:
                continue
            cells = [f"{med[b]:.1f}" if b in med else "n/a" for b in a.builds]
            ratios = [f"{med[b] / med[a.reference]:.2f}x" if b in med else "n/a"
                      for b in a.builds if b != a.reference]
            print(f"| {curve} | {t:.2f} | " + " | ".join(cells) + " | " + " | ".join(ratios) + " |")
    for title, table in (("build seconds", build_s),
                         ("batch QPS (search_batch on every thread, best setting at recall >= 0.95)", batch)):
        print(f"\nmedian {title} over rounds; ratio = build / {a.reference}\n")
        print("| curve | " + " | ".join(a.builds) + " | " +
              " | ".join(f"{b} / {a.reference}" for b in a.builds if b != a.reference) + " |")
        print("|---|" + "---|" * (2 * len(a.builds) - 1))
        for curve in names:
            med = {b: statistics.median(table[(curve, b)]) for b in a.builds if (curve, b) in table}
            if a.reference not in med or med[a.reference] <= 0:
                continue
            cells = [f"{med[b]:.2f}" if b in med else "n/a" for b in a.builds]
            ratios = [f"{med[b] / med[a.reference]:.2f}x" if b in med else "n/a"
                      for b in a.builds if b != a.reference]
            print(f"| {curve} | " + " | ".join(cells) + " | " + " | ".join(ratios) + " |")

if __name__ == "__main__":
    main()
