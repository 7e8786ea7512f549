#!/usr/bin/env python3
"""annulus-mpi under mpirun on one machine (oversubscribed), as CI runs it.

  check_mpi.py ANNULUS_MPI MPIEXEC WORKDIR

1. Builds an hnsw sharded_index over annulus-bench's default set with S = 2
   and S = 4 shards (annulus-mpi build).
2. Serves it with -np 4 as S = 2 x R = 2 and S = 4 x R = 1, with --check: every
   result must equal the in-process sharded_index's over the same files.
3. Start-up failures: a missing shard file, a shard file from another index
   (another metric, written by another save), a rank count that is not S x R.
   Every one must end the job non-zero within the timeout, and the message
   must name the rank and the file.
4. A rank that exits abruptly mid-run: the job must end non-zero within the
   timeout; prints how long the job took to end after the rank died.
"""
import os
import shutil
import subprocess
import sys
import time

TIMEOUT = 120  # seconds a failing job may take before this test calls it a hang


def main():
    tool, mpiexec, work = sys.argv[1:4]
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    mpirun = [mpiexec, "--oversubscribe"]
    if os.geteuid() == 0:
        mpirun.append("--allow-run-as-root")
    failures = []

    def run(args, what):
        start = time.monotonic()
        try:
            p = subprocess.run(args, cwd=work, capture_output=True, text=True, timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            failures.append(f"{what}: no exit within {TIMEOUT} s (a hang)")
            return None, TIMEOUT, ""
        secs = time.monotonic() - start
        run.ended = time.time()
        out = p.stdout + p.stderr
        print(f"--- {what}: exit {p.returncode} in {secs:.1f} s")
        # annulus-mpi's own lines, not Open MPI's boxed notices
        ours = [line for line in out.splitlines() if line.strip() and not line.startswith(("---", "  Process", "  Exit",
                "Primary job", "a non-zero", "mpirun detected", "the job to be"))]
        print("\n".join("    " + line for line in ours[-12:]))
        return p.returncode, secs, out

    def expect_ok(args, what, needle):
        rc, _, out = run(args, what)
        if rc != 0 or needle not in out:
            failures.append(f"{what}: expected exit 0 and '{needle}', got exit {rc}")

    def expect_failure(args, what, needles):
        rc, _, out = run(args, what)
        if rc is None:
            return
        if rc == 0:
            failures.append(f"{what}: exit 0, expected a failure")
        for n in needles:
            if n not in out:
                failures.append(f"{what}: the output does not name '{n}'")

    queries = ["--queries", "400"]
    for shards in (2, 4):
        expect_ok([tool, "build", "--out", f"s{shards}", "--shards", str(shards), "--index", "hnsw:m=12",
                   *queries], f"build S={shards}", "saved to")
    expect_ok([tool, "build", "--out", "other", "--shards", "2", "--index", "flat", "--metric", "cosine",
               *queries], "build another index (flat, cosine)", "saved to")

    serve = [tool, "serve", "--search", "ef=48", "--batch", "50", "--rounds", "1", *queries]
    check = "check: 0 of 400 queries differ from the in-process sharded_index"
    expect_ok([*mpirun, "-np", "4", *serve, "--index", "s2", "--replicas", "2", "--check"], "S=2 x R=2", check)
    expect_ok([*mpirun, "-np", "4", *serve, "--index", "s4", "--replicas", "1", "--check"], "S=4 x R=1", check)

    shutil.copytree(os.path.join(work, "s2"), os.path.join(work, "missing"))
    os.remove(os.path.join(work, "missing", "shard-00001.annulus"))
    expect_failure([*mpirun, "-np", "4", *serve, "--index", "missing", "--replicas", "2"],
                   "a missing shard file", ["rank 1 (shard 1", "rank 3 (shard 1", "shard-00001.annulus is missing"])
    shutil.copytree(os.path.join(work, "s2"), os.path.join(work, "foreign"))
    shutil.copy(os.path.join(work, "other", "shard-00000.annulus"), os.path.join(work, "foreign"))
    expect_failure([*mpirun, "-np", "2", *serve, "--index", "foreign", "--replicas", "1"],
                   "a shard file of another index", ["rank 0 (shard 0",
                                                     "shard-00000.annulus is not the shard file saved with this manifest"])
    expect_failure([*mpirun, "-np", "3", *serve, "--index", "s2", "--replicas", "2"],
                   "3 ranks for 2 shards x 2 replicas", ["the job has 3 ranks", "need 4"])

    for rank in (1, 0):  # a serving rank, then a root
        what = f"rank {rank} exits abruptly after 2 batches"
        rc, secs, out = run([*mpirun, "-np", "4", *serve, "--index", "s2", "--replicas", "2",
                             "--die-rank", str(rank), "--die-after", "2"], what)
        if rc == 0:
            failures.append(f"{what}: exit 0, expected a failure")
        died = [line for line in out.splitlines() if "exits abruptly at" in line]
        if died:
            at = float(died[0].rsplit(" ", 1)[1])
            print(f"    the job ended {run.ended - at:.2f} s after rank {rank} died")

    if failures:
        print("FAILED:\n  " + "\n  ".join(failures))
        return 1
    print("annulus-mpi: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
