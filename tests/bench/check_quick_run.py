#!/usr/bin/env python3
"""Checks an annulus-bench --quick output directory: results.csv has exactly the
documented columns, every row has sane values, exact search has recall 1,
summary.md exists and report.html embeds every row.   usage: check_quick_run.py OUT_DIR"""
import csv, json, math, os, re, sys

COLUMNS = ("dataset,metric,library,index,build_params,search_params,threads,k,build_s,"
           "bytes_per_vector,recall,qps_1t,qps_all,p50_us,p99_us").split(",")

def fail(msg):
    sys.exit(f"check_quick_run: {msg}")

out = sys.argv[1]
with open(os.path.join(out, "results.csv"), newline="") as f:
    rows = list(csv.reader(f))
if rows[0] != COLUMNS:
    fail(f"header is {rows[0]}, expected {COLUMNS}")
if len(rows) < 2:
    fail("no result rows")
flat = 0
for line, row in enumerate(rows[1:], start=2):
    if len(row) != len(COLUMNS):
        fail(f"line {line} has {len(row)} fields")
    r = dict(zip(COLUMNS, row))
    nums = {c: float(r[c]) for c in COLUMNS[6:]}
    if any(math.isnan(v) or v < 0 for v in nums.values()):
        fail(f"line {line}: negative or NaN value in {r}")
    if not 0.0 <= nums["recall"] <= 1.0:
        fail(f"line {line}: recall {nums['recall']} outside [0, 1]")
    if nums["qps_1t"] <= 0 or nums["qps_all"] <= 0 or nums["bytes_per_vector"] <= 0:
        fail(f"line {line}: qps or bytes_per_vector not positive: {r}")
    if nums["p99_us"] < nums["p50_us"]:
        fail(f"line {line}: p99 {nums['p99_us']} below p50 {nums['p50_us']}")
    # annulus's exact search re-scores its candidates, so it is exact; FAISS's
    # IndexFlat ranks by |q|^2 + |x|^2 - 2 q.x in float and may swap near ties.
    if r["index"] == "flat" and nums["recall"] != 1.0:
        fail(f"line {line}: annulus flat has recall {nums['recall']}, expected 1")
    if r["index"] == "faiss-flat" and nums["recall"] < 0.99:
        fail(f"line {line}: faiss-flat has recall {nums['recall']}")
    # Graph indexes at the widest quick beam must find nearly every neighbour.
    if r["index"] in ("hnsw", "hnswlib", "faiss-hnsw") and r["search_params"] == "ef=256" \
            and nums["recall"] < 0.95:
        fail(f"line {line}: {r['index']} at ef=256 has recall {nums['recall']}")
    flat += r["index"] == "flat"
if flat == 0:
    fail("no exact (flat) row")
# Each curve once (a peer shared by two annulus indexes is built once), each
# index with a point above recall 0.9, and an IVF's nlist as it ran: the
# quick set's 20,000 rows hold at most 512 lists of 39.
keys = [tuple(r[2:6]) for r in rows[1:]]
if len(keys) != len(set(keys)):
    fail("a curve's point is measured twice: " + str(sorted(k for k in keys if keys.count(k) > 1)[:1]))
for index in sorted({r[3] for r in rows[1:]}):
    best = max(float(r[10]) for r in rows[1:] if r[3] == index)
    if best <= 0.9:
        fail(f"{index} reaches only recall {best} in --quick; every index needs a point above 0.9")
for r in rows[1:]:
    for kv in r[4].split(","):
        if kv.startswith("nlist=") and int(kv[6:]) > 20000 // 39:
            fail(f"{r[3]} reports {kv}, more lists than the quick set can train")
summary = open(os.path.join(out, "summary.md")).read()
if not summary:
    fail("summary.md is empty")
if "The setting to use for each recall target" not in summary or "ef=" not in summary:
    fail("summary.md does not name the setting that reaches each recall target")
# report.html embeds every row (its browser test, bench.html_report, checks
# what the page does with them).
page = open(os.path.join(out, "report.html"), errors="replace").read()
found = re.search(r'<script type="application/json" id="measurements">(.*?)</script>', page, re.S)
if not found:
    fail("report.html has no embedded measurements")
points = sum(len(c["points"]) for c in json.loads(found.group(1))["curves"])
if points != len(rows) - 1:
    fail(f"report.html embeds {points} points for {len(rows) - 1} rows")
print(f"check_quick_run: {len(rows) - 1} rows OK")
