#!/usr/bin/env python3
"""annulus-bench on bad input: each case must exit non-zero with one line that
names the problem, and leave no results.csv.
usage: check_bad_input.py ANNULUS_BENCH WORK_DIR"""
import os, shutil, struct, subprocess, sys

bench, work = sys.argv[1], sys.argv[2]
shutil.rmtree(work, ignore_errors=True)
os.makedirs(work)

def vecs(path, rows, fmt="f"):
    with open(path, "wb") as f:
        for row in rows:
            f.write(struct.pack("<i", len(row)) + struct.pack("<%d%s" % (len(row), fmt), *row))

def texmex(name, base, queries, truth=None):
    d = os.path.join(work, name)
    os.makedirs(d)
    vecs(os.path.join(d, "base.fvecs"), base)
    vecs(os.path.join(d, "query.fvecs"), queries)
    if truth is not None:
        vecs(os.path.join(d, "groundtruth.ivecs"), truth, "i")
    return d

base = [[float(i), float(i % 3), 1.0] for i in range(20)]
good = texmex("good", base, [[0.5, 1.0, 1.0], [3.0, 0.0, 1.0]])
cases = {
    "unknown index": (["--index", "hnws"], "unknown index 'hnws'"),
    "unknown peer": (["--peers", "faiss-hnws"], "unknown index 'faiss-hnws'"),
    "unknown build parameter": (["--index", "flat:nlist=4", "--peers", "none"], "unknown parameter nlist"),
    "sweep of no chosen index": (["--index", "flat", "--sweep", "ef=1,2"], "no chosen index has the search parameter 'ef'"),
    "missing data": (["--data", os.path.join(work, "nowhere")], "nowhere"),
    "dimension mismatch": (["--data", texmex("dims", base, [[1.0, 2.0]])], "dimension"),
    "truth for other queries": (["--data", texmex("gt", base, [[1.0, 2.0, 3.0]], [[0, 1], [2, 3]])],
                                "ground truth has 2 rows, there are 1 queries"),
    "k larger than the base": (["--data", good, "--k", "21"], "k = 21 is larger than the 20 base vectors"),
    "malformed metric": (["--metric", "hamming"], "hamming"),
    "advise: bad RAM budget": (["--advise", "--ram-budget", "2XB"], "--ram-budget 2XB: expected a positive size"),
    "advise: p99 without a unit": (["--advise", "--p99", "5"], "--p99 5: give a unit"),
    "advise: bad item count": (["--advise", "--plan-n", "lots"], "--plan-n lots: expected a count"),
    "advise: with an index list": (["--advise", "--index", "hnsw"], "--index does not apply to --advise"),
    "a target without --advise": (["--p99", "5ms"], "--p99 is a target for --advise"),
    "index named for another metric": (["--data", good, "--metric", "ip", "--index", "kd_tree", "--peers", "none"],
                                       "kd_tree searches under l2, cosine, not inner_product"),
}
failed = 0
for name, (args, expect) in cases.items():
    out = os.path.join(work, "out-" + name.replace(" ", "-"))
    p = subprocess.run([bench, "--quick", "--out", out] + args, capture_output=True, text=True)
    said = (p.stderr + p.stdout).strip().splitlines()
    last = said[-1] if said else ""
    problems = []
    if p.returncode == 0:
        problems.append("exit code 0")
    if expect not in p.stderr + p.stdout:
        problems.append(f"no '{expect}' in what it said: {last!r}")
    if os.path.exists(os.path.join(out, "results.csv")):
        problems.append("a results.csv was written")
    print(f"{'FAIL' if problems else 'ok  '} {name}: {last}")
    for pr in problems:
        print("     " + pr)
    failed += bool(problems)
print(f"{len(cases) - failed} passed, {failed} failed")
sys.exit(1 if failed else 0)
