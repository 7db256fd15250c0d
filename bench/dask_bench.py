#!/usr/bin/python3
"""dask_bench.py - the Dask half of bench/compare: the workloads cask-bench
and cask-scaling run on cask, run on Dask distributed, on a LocalCluster of
2 workers x 1 thread, processes=True, dashboard off.

    /usr/bin/python3 bench/dask_bench.py [--quick] [--repeat R] [--json FILE]

Workloads and figures are cask-bench's (its header says what each does),
with Dask's own calls: client.map + client.gather, client.submit(...).result(),
as_completed, submit(..., workers=[address]). Dask runs fewer tasks where
cask runs many (Dask does a few hundred to a few thousand tasks a second
here): throughput on 5,000 inputs, latency over 500 calls, the graph and
as_completed on 1,000 inputs where cask uses 5,000, the broker-memory
figure on 100,000 pending tasks. The figures are per task (Dask's rates
hardly change with the size), and the JSON says how many ran. The scheduler of a
LocalCluster lives in the client's process, so the memory workload starts
dask-scheduler and one dask-worker as processes of their own and reads the
scheduler's resident memory alone (psutil, else /proc).

Each workload runs --repeat times and the best run counts, as in cask-bench.
Every result is checked. A workload that fails is reported (its entry in the
JSON says why) and the others still run. Exits 0, or 1 when one failed.
"""
import argparse
import json
import logging
import math
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
import traceback

import dask
import distributed
from distributed import Client, LocalCluster, as_completed, wait

MB = 1e6


# The task functions: the same work as bench_lib.c's and tutorial_lib.c's


def noop(x):
    return x


def inc(x):
    return x + 1


def double(x):
    return 2 * x


def add(x, y):
    return x + y


def make_bytes(n):
    return b"\x5a" * n      # every page written, as make_bytes in C


def nbytes(b):
    return len(b)


def wait_file(path, timeout_s):
    """Returns 0 once path exists, polled every 5 ms, as wait_file in C."""
    deadline = time.monotonic() + timeout_s
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} did not appear within {timeout_s} s")
        time.sleep(0.005)
    return 0


def is_prime(n):
    """The notebook's naive test, as tutorial_primes.h."""
    if n < 2:
        return False
    if n == 2:
        return True
    for i in range(2, int(math.sqrt(n)) + 1):
        if n % i == 0:
            return False
    return True


def count_primes_less_than(m):
    return sum(is_prime(i) for i in range(m))


class Inputs:
    """Inputs no earlier run used, so no result comes from an earlier task."""

    def __init__(self):
        self.next = (int(time.time()) % 100000) * 10000000

    def take(self, n):
        first = self.next
        self.next += n
        return first


def local_cluster(nworkers):
    # The dashboard off; the scheduler's HTTP server (health, metrics) is
    # still started, on a free port rather than 8787, which may be taken
    cluster = LocalCluster(n_workers=nworkers, threads_per_worker=1, processes=True,
                           dashboard_address=None, silence_logs=logging.ERROR,
                           scheduler_kwargs={"dashboard_address": "127.0.0.1:0"})
    client = Client(cluster)
    client.wait_for_workers(nworkers)
    return cluster, client


def close(cluster, client):
    client.close()
    cluster.close()


def startup(args):
    samples = []
    for _ in range(args.repeat):
        start = time.perf_counter()
        cluster, client = local_cluster(2)
        ready = time.perf_counter()
        close(cluster, client)
        samples.append((ready - start) * 1e3)
    return {"ms": min(samples), "samples": samples}


def throughput(client, inputs, args):
    n = args.tasks
    rates, map_us = [], []
    for _ in range(args.repeat):
        first = inputs.take(n)
        xs = list(range(first, first + n))
        start = time.perf_counter()
        futures = client.map(noop, xs)
        mapped = time.perf_counter()
        results = client.gather(futures)
        end = time.perf_counter()
        assert results == xs, "throughput: wrong results"
        del futures
        rates.append(n / (end - start))
        map_us.append((mapped - start) * 1e6 / n)
    return {"tasks": n, "tasks_per_s": max(rates), "map_us_per_task": min(map_us),
            "tasks_per_s_samples": rates, "map_us_samples": map_us}


def latency(client, inputs, args):
    n = args.latency
    medians, p99s = [], []
    for _ in range(args.repeat):
        first = inputs.take(n)
        samples = []
        for i in range(n):
            start = time.perf_counter()
            result = client.submit(inc, first + i).result()
            samples.append((time.perf_counter() - start) * 1e6)
            assert result == first + i + 1, "latency: wrong result"
        samples.sort()
        medians.append(samples[n // 2])
        p99s.append(samples[n * 99 // 100])
    best = medians.index(min(medians))
    return {"n": n, "median_us": medians[best], "p99_us": p99s[best],
            "median_samples": medians, "p99_samples": p99s}


def graph_run(client, inputs, n):
    """The tutorial's graph, as s_graph_run in cask_bench.c."""
    offset = inputs.take(n)
    count = 0
    start = time.perf_counter()
    level = []
    for i in range(n):
        x = client.submit(inc, offset + i)
        y = client.submit(double, x)
        level.append(client.submit(add, x, y))
        count += 3
    while len(level) > 1:
        pairs = [client.submit(add, level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        count += len(pairs)
        level = pairs + ([level[-1]] if len(level) % 2 else [])
    total = level[0].result()
    end = time.perf_counter()
    expected = 3 * (n * (offset + 1) + n * (n - 1) // 2)
    assert total == expected, f"graph {n}: total {total}, expected {expected}"
    return count, count / (end - start)


def graph(client, inputs, args):
    out = []
    for n in args.graph_sizes:
        rates = []
        for _ in range(args.repeat):
            ntasks, rate = graph_run(client, inputs, n)
            rates.append(rate)
        out.append({"inputs": n, "tasks": ntasks, "tasks_per_s": max(rates), "samples": rates})
    return out


def completed_run(client, inputs, n):
    """The custom-workloads tutorial's as_completed reduction."""
    offset = inputs.take(n)
    count = n
    start = time.perf_counter()
    zs = client.map(inc, range(offset, offset + n))
    seq = as_completed(zs)
    del zs
    while seq.count() > 1:
        a = next(seq)
        b = next(seq)
        seq.add(client.submit(add, a, b))
        count += 1
    total = next(seq).result()
    end = time.perf_counter()
    expected = n * (offset + 1) + n * (n - 1) // 2
    assert total == expected, f"as_completed {n}: total {total}, expected {expected}"
    return count, count / (end - start)


def completed(client, inputs, args):
    n = args.completed
    rates = []
    for _ in range(args.repeat):
        ntasks, rate = completed_run(client, inputs, n)
        rates.append(rate)
    return {"inputs": n, "tasks": ntasks, "tasks_per_s": max(rates), "samples": rates}


def p2p(client, args):
    a, b = sorted(client.scheduler_info()["workers"])[:2]
    out = []
    for size in args.move_sizes:
        rates = []
        # One move not counted first, then the runs back to back, as
        # cask-bench does (fresh memory is slow to fault in on the VM)
        for run in range(args.repeat + 1):
            made = client.submit(make_bytes, size, workers=[a], pure=False)
            wait(made)
            assert made.status == "finished", f"p2p: making {size} bytes: {made.status}"
            start = time.perf_counter()
            taken = client.submit(nbytes, made, workers=[b], pure=False)
            got = taken.result()
            end = time.perf_counter()
            assert got == size, f"p2p: moving {size} bytes: got {got}"
            del made, taken
            if run:
                rates.append(size / MB / (end - start))
        out.append({"bytes": size, "mb_per_s": max(rates), "samples": rates})
    return out


def rss(pid):
    try:
        import psutil
        return psutil.Process(pid).memory_info().rss
    except ImportError:
        with open(f"/proc/{pid}/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def memory(args):
    """Scheduler memory per pending task, on a scheduler process of its own
    and one worker without a nanny (which would take seconds to stop)."""
    n = args.pending
    with tempfile.TemporaryDirectory(prefix="dask-bench-memory.") as tmp:
        scheduler_file = os.path.join(tmp, "scheduler.json")
        release = os.path.join(tmp, "release")
        log = open(os.path.join(tmp, "log"), "w")
        common = ["--scheduler-file", scheduler_file, "--no-dashboard"]
        scheduler = subprocess.Popen(
            [sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
             "--port", "0", "--dashboard-address", "127.0.0.1:0"] + common,
            stdout=log, stderr=log)
        worker = None
        client = None
        try:
            deadline = time.monotonic() + 60
            while not os.path.exists(scheduler_file) and time.monotonic() < deadline:
                time.sleep(0.05)
            worker = subprocess.Popen(
                [sys.executable, "-m", "distributed.cli.dask_worker", "--nthreads", "1",
                 "--no-nanny"] + common, stdout=log, stderr=log)
            client = Client(scheduler_file=scheduler_file, timeout=60)
            client.wait_for_workers(1)
            blocker = client.submit(wait_file, release, 600, pure=False)
            key = blocker.key
            # The submit reaches the scheduler up to 10 ms later (the client
            # batches its messages), so the task may not be there yet
            def state(dask_scheduler):
                task = dask_scheduler.tasks.get(key)
                return task.state if task else None
            deadline = time.monotonic() + 60
            while client.run_on_scheduler(state) != "processing":
                assert time.monotonic() < deadline, "memory: the blocker never ran"
                time.sleep(0.01)
            before = rss(scheduler.pid)
            futures = client.map(noop, [blocker] * n, pure=False)
            deadline = time.monotonic() + 600
            while client.run_on_scheduler(lambda dask_scheduler: len(dask_scheduler.tasks)) < n + 1:
                assert time.monotonic() < deadline, "memory: the scheduler never had every task"
                time.sleep(0.05)
            time.sleep(0.2)
            after = rss(scheduler.pid)
            client.cancel(futures)
            del futures
            open(release, "w").close()
            assert blocker.result() == 0
        finally:
            open(release, "w").close()
            if client:
                client.shutdown()       # the scheduler and its worker, at once
            for process in (worker, scheduler):
                if process:
                    process.terminate()
            for process in (worker, scheduler):
                if process:
                    try:
                        process.wait(10)
                    except subprocess.TimeoutExpired:
                        process.kill()
                        process.wait()
            log.close()
    return {"pending": n, "rss_before": before, "rss_after": after,
            "bytes_per_task": (after - before) / n}


def plain_run(inputs, nprocs):
    """The tasks split over nprocs forked processes, as cask-scaling's."""
    start = time.perf_counter()
    with multiprocessing.get_context("fork").Pool(nprocs) as pool:
        counts = pool.map(count_primes_less_than, inputs, chunksize=1)
    return time.perf_counter() - start, counts


def scaling(args):
    """count_primes over 8 inputs on 1 and 2 workers, beside 1 and 2 processes."""
    inputs = [args.size + i for i in range(args.scaling_tasks)]
    reference = None
    points = []
    for nworkers in (1, 2):
        cluster, client = local_cluster(nworkers)
        try:
            dask_s, plain_s = [], []
            for _ in range(args.repeat):
                seconds, counts = plain_run(inputs, nworkers)
                reference = reference or counts
                assert counts == reference, "scaling: plain processes disagree"
                plain_s.append(seconds)
                start = time.perf_counter()
                futures = client.map(count_primes_less_than, inputs, pure=False)
                counts = client.gather(futures)
                dask_s.append(time.perf_counter() - start)
                assert counts == reference, "scaling: Dask's counts are wrong"
                del futures
        finally:
            close(cluster, client)
        points.append({"workers": nworkers, "dask": {"best": min(dask_s), "seconds": dask_s},
                       "plain": {"best": min(plain_s), "seconds": plain_s}})
    one, two = points
    for point in points:
        point["dask"]["speedup"] = one["dask"]["best"] / point["dask"]["best"]
        point["plain"]["speedup"] = one["plain"]["best"] / point["plain"]["best"]
        point["dask_over_plain"] = point["dask"]["best"] / point["plain"]["best"]
    return {"function": "count_primes_less_than", "tasks": len(inputs), "size": args.size,
            "points": points}


WORKLOADS = ["startup", "throughput", "latency", "graph", "completed", "p2p", "memory",
             "scaling"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, 1 run")
    parser.add_argument("--repeat", type=int, help="runs per workload (default 3; 1 with --quick)")
    parser.add_argument("--tasks", type=int, help="throughput tasks (default 5000)")
    parser.add_argument("--pending", type=int, help="pending tasks for memory (default 100000)")
    parser.add_argument("--only", help="comma-separated workloads of: " + ", ".join(WORKLOADS))
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args()
    quick = args.quick
    args.repeat = args.repeat or (1 if quick else 3)
    args.tasks = args.tasks or (500 if quick else 5000)
    args.pending = args.pending or (2000 if quick else 100000)
    args.latency = 50 if quick else 500
    args.graph_sizes = [16, 64] if quick else [256, 1000]
    args.completed = 100 if quick else 1000
    args.move_sizes = [1000000, 10000000] if quick else [100000000, 1000000000]
    args.size = 20000 if quick else 300000      # about 0.3 s a task, as cask-scaling's
    args.scaling_tasks = 8
    only = set(args.only.split(",")) if args.only else set(WORKLOADS)
    unknown = only - set(WORKLOADS)
    if unknown:
        parser.error("no workload " + ", ".join(sorted(unknown)))

    out = {"dask": dask.__version__, "distributed": distributed.__version__,
           "python": sys.version.split()[0], "cluster": "LocalCluster, 2 workers x 1 thread",
           "quick": quick, "repeat": args.repeat}
    inputs = Inputs()

    failed = []

    def step(name, fn, *fn_args, key=None):
        """Runs one workload; a failure is reported and the others still run."""
        if name in only:
            started = time.perf_counter()
            try:
                out[key or name] = fn(*fn_args)
            except Exception as error:      # noqa: BLE001 - any failure is reported
                traceback.print_exc()
                out[key or name] = {"error": f"{type(error).__name__}: {error}"}
                failed.append(name)
            print(f"dask {name}: {time.perf_counter() - started:.1f} s", file=sys.stderr,
                  flush=True)

    step("startup", startup, args)
    hot = {"throughput", "latency", "graph", "completed", "p2p"} & only
    if hot:
        cluster, client = local_cluster(2)
        try:
            step("throughput", throughput, client, inputs, args)
            step("latency", latency, client, inputs, args)
            step("graph", graph, client, inputs, args)
            step("completed", completed, client, inputs, args, key="as_completed")
            step("p2p", p2p, client, args)
        finally:
            close(cluster, client)
    step("memory", memory, args)
    step("scaling", scaling, args)
    out["failed"] = failed
    text = json.dumps(out, indent=2)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text + "\n")
    else:
        print(text)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
