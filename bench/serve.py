"""Requests per second and latency of `vstar serve`: batching on (--max-batch 32) vs off (1).

Starts the real server (`vstar serve --run RUN --port 0`, a subprocess listening on 127.0.0.1
only) once per setting and sends it POST /score requests, one candidate each (G_T's test
candidates of the run, in turn), from ``--clients`` concurrent clients (16), each a thread with
its own HTTP connection. Bounded: each setting stops after ``--requests`` requests or
``--seconds`` seconds, whichever comes first, after a short warm-up. Prints requests/s and the
p50/p99 latency of each setting and the throughput ratio; every reply is checked (status 200,
one score) and any failure is counted and reported.

    python bench/serve.py --run runs/default          # a finished run
    python bench/serve.py                             # builds a micro run in a temp folder first (~1-3 min)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[1]


def start_server(run: Path, max_batch: int) -> tuple[subprocess.Popen, str]:
    """`vstar serve` on a free loopback port; returns the process and its URL once it listens."""
    process = subprocess.Popen(
        [sys.executable, "-m", "vstar.cli", "serve", "--run", str(run), "--host", "127.0.0.1", "--port", "0",
         "--max-batch", str(max_batch)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=REPO,
    )
    line = process.stdout.readline()
    if " at http://127.0.0.1:" not in line:
        process.kill()
        raise SystemExit(f"the server did not start: {line!r}")
    return process, line.split(" at ")[1].split()[0]


def load(url: str, bodies: list[dict], clients: int, max_requests: int, seconds: float) -> dict:
    """Send up to ``max_requests`` requests from ``clients`` threads for at most ``seconds``."""
    lock = threading.Lock()
    latencies: list[float] = []
    failures: list[str] = []
    sent = [0]
    deadline = time.monotonic() + seconds

    def client() -> None:
        session = requests.Session()
        while True:
            with lock:
                if sent[0] >= max_requests or time.monotonic() > deadline:
                    return
                body = bodies[sent[0] % len(bodies)]
                sent[0] += 1
            start = time.perf_counter()
            try:
                reply = session.post(url + "/score", json=body, timeout=60)
                ok = reply.status_code == 200 and len(reply.json()["scores"]) == 1
                problem = None if ok else f"{reply.status_code} {reply.text[:200]}"
            except requests.RequestException as exc:
                problem = repr(exc)
            with lock:
                (failures.append(problem) if problem else latencies.append(time.perf_counter() - start))

    threads = [threading.Thread(target=client) for _ in range(clients)]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - began
    latencies.sort()
    return {
        "requests": len(latencies), "failures": len(failures), "first_failure": failures[0] if failures else None,
        "seconds": wall, "requests_per_s": len(latencies) / wall,
        "p50_ms": 1000 * statistics.median(latencies), "p99_ms": 1000 * latencies[int(0.99 * (len(latencies) - 1))],
    }


def measure(run: Path, max_batch: int, bodies: list[dict], args: argparse.Namespace) -> dict:
    process, url = start_server(run, max_batch)
    try:
        load(url, bodies, args.clients, 2 * args.clients, 30)  # warm-up
        result = load(url, bodies, args.clients, args.requests, args.seconds)
        result["batches"] = requests.get(url + "/health", timeout=30).json()["batches"]
    finally:
        process.terminate()
        process.wait(timeout=60)
    return result


def candidate_bodies(run: Path) -> list[dict]:
    """One /score body per G_T test candidate of the run."""
    rows = [json.loads(line) for line in (run / "eval" / "candidates.jsonl").read_text().splitlines() if line.strip()]
    return [{"prompt": r["prompt"], "completions": [r["completion"]], "finished": r["finished"]}
            for r in rows if r["source"] == "final"]


def micro_run(folder: Path) -> Path:
    run = folder / "micro"
    subprocess.run([sys.executable, "-m", "vstar.cli", "run", "--config", str(REPO / "configs" / "micro.yaml"),
                    "--run-dir", str(run)], check=True, cwd=REPO, stdout=subprocess.DEVNULL)
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", type=Path, help="a finished run directory (default: a micro run built here)")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--requests", type=int, default=600, help="requests per setting, at most")
    parser.add_argument("--seconds", type=float, default=60.0, help="seconds per setting, at most")
    parser.add_argument("--batch", type=int, default=32, help="--max-batch of the batching setting")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run = args.run or micro_run(Path(tmp))
        bodies = candidate_bodies(run)
        print(f"run {run}, {len(bodies)} distinct candidates, {args.clients} clients, "
              f"at most {args.requests} requests or {args.seconds:.0f} s per setting, load {os.getloadavg()[0]:.2f}")
        results = {}
        for max_batch in (args.batch, 1):
            results[max_batch] = result = measure(run, max_batch, bodies, args)
            print(f"--max-batch {max_batch:>2}: {result['requests_per_s']:7.1f} requests/s, p50 {result['p50_ms']:6.1f} ms, "
                  f"p99 {result['p99_ms']:6.1f} ms ({result['requests']} requests in {result['seconds']:.1f} s, "
                  f"{result['batches']} forward batches, {result['failures']} failures)")
            if result["failures"]:
                print(f"  first failure: {result['first_failure']}")
        ratio = results[args.batch]["requests_per_s"] / results[1]["requests_per_s"]
        print(f"batching: {ratio:.2f}x the throughput of --max-batch 1 (load {os.getloadavg()[0]:.2f} after)")


if __name__ == "__main__":
    main()
