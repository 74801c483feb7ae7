"""Requests per second and latency of `vstar serve`: batching on (--max-batch 32) vs off (1).

Starts the real server (`vstar serve --run TARGET --port 0`, a subprocess listening on 127.0.0.1
only) once per setting and sends it POST /score requests, one candidate each, from ``--clients``
concurrent clients (16), each a thread with its own HTTP connection. Bounded: each setting
stops after ``--requests`` requests or ``--seconds`` seconds, whichever comes first, after a
short warm-up. Prints requests/s and the p50/p99 latency of each setting and the throughput
ratio; every reply is checked (status 200, one score) and failures are counted.

What is served:
  - ``--model NAME_OR_PATH`` (default ``smollm2-135m-instruct``, the checkpoint `make` installs):
    a 135M-parameter checkpoint served as a verifier, scoring gold solutions of the embedded
    task (prompt + ~40 tokens) through its chat template;
  - ``--run RUN_DIR``: a finished run's verifier, scoring the run's own test candidates.

How much batching gains depends on what a forward pass costs beside its arithmetic. With
torch's default threads (one per core) on a 2-core machine that also runs the 16 clients, every
operator pays for its threads' synchronisation: once per request without batching, once per
batch with it. With ``--threads 1`` that cost goes: a micro run's model (~1 ms a pass) is then
paced by HTTP rather than by the model, a 135M model by its arithmetic, and batching gains
little on a CPU (on a GPU a forward pass of 32 costs about what one of 1 does).

    python bench/serve.py                          # SmolLM2-135M
    python bench/serve.py --run runs/micro         # a run's verifier
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[1]


def start_server(run: Path, max_batch: int, threads: int | None) -> tuple[subprocess.Popen, str]:
    """`vstar serve` on a free loopback port; returns the process and its URL once it listens."""
    process = subprocess.Popen(
        [sys.executable, "-m", "vstar.cli", "serve", "--run", str(run), "--host", "127.0.0.1", "--port", "0",
         "--max-batch", str(max_batch), *(["--threads", str(threads)] if threads is not None else [])],
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
    process, url = start_server(run, max_batch, args.threads)
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


def task_bodies(count: int = 64) -> list[dict]:
    """One /score body per embedded-task problem with a gold solution (its first ``count``)."""
    from vstar.tasks import get_task

    problems = [p for p in get_task("embedded").problems("sft") if p.solution][:count]
    return [{"prompt": p.prompt, "completions": [p.solution.rstrip()], "finished": True} for p in problems]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="smollm2-135m-instruct", help="a checkpoint to serve (name or folder)")
    parser.add_argument("--run", type=Path, help="serve this finished run's verifier instead of --model")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--requests", type=int, default=600, help="requests per setting, at most")
    parser.add_argument("--seconds", type=float, default=60.0, help="seconds per setting, at most")
    parser.add_argument("--batch", type=int, default=32, help="--max-batch of the batching setting")
    parser.add_argument("--threads", type=int, default=None,
                        help="the server's torch CPU threads (default: as `vstar serve` sets them, the run's "
                             "run.threads, else torch's default of one per core)")
    args = parser.parse_args()
    if args.run:
        target, bodies = args.run, candidate_bodies(args.run)
    else:
        from vstar.models.pretrained import resolve_model

        target, bodies = Path(resolve_model(args.model)), task_bodies()
    print(f"serving {target}: {len(bodies)} distinct candidates, {args.clients} clients, server threads "
          f"{args.threads or 'default'}, at most {args.requests} requests or {args.seconds:.0f} s per setting, "
          f"load {os.getloadavg()[0]:.2f}")
    results = {}
    for max_batch in (args.batch, 1):
        results[max_batch] = result = measure(target, max_batch, bodies, args)
        print(f"--max-batch {max_batch:>2}: {result['requests_per_s']:7.1f} requests/s, p50 {result['p50_ms']:6.1f} ms, "
              f"p99 {result['p99_ms']:6.1f} ms ({result['requests']} requests in {result['seconds']:.1f} s, "
              f"{result['batches']} forward batches, {result['failures']} failures)")
        if result["failures"]:
            print(f"  first failure: {result['first_failure']}")
    ratio = results[args.batch]["requests_per_s"] / results[1]["requests_per_s"]
    print(f"batching: {ratio:.2f}x the throughput of --max-batch 1 (load {os.getloadavg()[0]:.2f} after)")


if __name__ == "__main__":
    main()
