"""Kill a real run twice with SIGKILL, resume it each time, and compare it with an uninterrupted run.

    python scripts/kill_resume.py --reference runs/default --run-dir runs/default_killed [--config FILE]

The run starts fresh in ``--run-dir`` with the reference run's config (``--config`` overrides it).
It is killed (1) while the generator of the last iteration trains, once a Trainer checkpoint is
complete, and (2) while the test candidates are sampled, once a few chunks are on disk; after each
kill ``vstar run --resume`` continues it. At the end the files of every stage are compared with the
reference run's, byte for byte, and the script exits 1 if any differs.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

COMPARED = ["eval/metrics.json", "eval/candidates.jsonl", "eval/labels.jsonl", "eval/scores.jsonl",
            "verifier/pairs.jsonl"]


def start(args: list[str], log) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "vstar.cli", "run", *args], stdout=log, stderr=log,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})


def lines(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def kill_when(process: subprocess.Popen, condition, what: str) -> None:
    while not condition():
        if process.poll() is not None:
            raise SystemExit(f"the run ended (exit {process.returncode}) before the kill point: {what}")
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    print(f"{time.strftime('%H:%M:%S')} killed with SIGKILL: {what}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reference", type=Path, required=True, help="a finished, uninterrupted run directory")
    parser.add_argument("--run-dir", type=Path, required=True, help="where the killed run goes (must not exist)")
    parser.add_argument("--config", type=Path, help="config to run (default: the reference run's config.yaml)")
    args = parser.parse_args()
    if args.run_dir.exists():
        raise SystemExit(f"{args.run_dir} exists; choose a new directory")
    reference, run = args.reference, args.run_dir
    config = args.config or reference / "config.yaml"
    last = len(list(reference.glob("iter_*/generator")))
    log_path = run.with_name(run.name + ".kill_resume.log")
    run.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with open(log_path, "w") as log:
        process = start(["--config", str(config), "--run-dir", str(run)], log)
        checkpoints = run / f"iter_{last}" / "generator.tmp" / "checkpoints"
        kill_when(process, lambda: any(checkpoints.glob("checkpoint-*/.complete")),
                  f"training the generator of iteration {last} (a checkpoint is complete)")
        process = start(["--resume", str(run)], log)
        kill_when(process, lambda: lines(run / "eval" / "candidates_final.partial.jsonl") > 2000,
                  "sampling the test candidates (2,000+ lines on disk)")
        process = start(["--resume", str(run)], log)
        if process.wait() != 0:
            raise SystemExit(f"the resumed run failed; see {log_path}")
    print(f"finished after two kills in {time.monotonic() - started:.0f} s (log: {log_path})")
    compared = COMPARED + [str(p.relative_to(reference)) for p in sorted(reference.glob("iter_*/*.jsonl"))]
    compared += [str(p.relative_to(reference)) for p in sorted(reference.glob("**/model.safetensors"))]
    differ = [name for name in compared if (reference / name).read_bytes() != (run / name).read_bytes()]
    for name in compared:
        print(f"  {'DIFFERS' if name in differ else 'same   '}  {name}")
    print("result: " + ("identical to the uninterrupted run" if not differ else f"{len(differ)} files differ"))
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
