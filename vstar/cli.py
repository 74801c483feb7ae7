"""The ``vstar`` command. Each subcommand parses its arguments and calls one function."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from vstar.errors import VstarError


def _config_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE", help="YAML config (defaults: the embedded task and model)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.FIELD=VALUE",
                        help="override one setting, e.g. --set sampling.k=8 (repeatable)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vstar", description="V-STaR: train LLM reasoners with DPO verifiers.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="the whole V-STaR run (Algorithm 1 + evaluation + report)")
    _config_args(run)
    run.add_argument("--run-dir", metavar="DIR", help="run directory (default: <run.root>/<run.name>)")
    run.add_argument("--resume", nargs="?", const=True, default=False, metavar="RUN_DIR",
                     help="continue a run, skipping completed stages (optionally naming its directory)")
    run.add_argument("--help-config", action="store_true", help="list every setting with its default and exit")

    sample = sub.add_parser("sample", help="sample completions for a task's problems with one model")
    _config_args(sample)
    sample.add_argument("--model", required=True, help="model directory or hub id")
    sample.add_argument("--split", default="query", choices=["sft", "query", "test"])
    sample.add_argument("--n", type=int, default=None, help="samples per problem (default: sampling.k)")
    sample.add_argument("--out", required=True, help="samples.jsonl to write")

    label = sub.add_parser("label", help="check samples with the task's checker")
    _config_args(label)
    label.add_argument("--samples", required=True)
    label.add_argument("--split", default="query", choices=["sft", "query", "test"])
    label.add_argument("--out", required=True, help="labels.jsonl to write")

    gen = sub.add_parser("train-generator", help="SFT a model on prompt/completion pairs (JSONL)")
    _config_args(gen)
    gen.add_argument("--base", required=True, help="G_base directory or hub id")
    gen.add_argument("--data", required=True, help='JSONL of {"prompt", "completion"}')
    gen.add_argument("--out", required=True)

    ver = sub.add_parser("train-verifier", help="DPO a verifier from G_SFT on pairs (JSONL)")
    _config_args(ver)
    ver.add_argument("--sft", required=True, help="G_SFT directory (initialisation and reference)")
    ver.add_argument("--pairs", required=True, help='JSONL of {"prompt", "chosen", "rejected"}')
    ver.add_argument("--out", required=True)

    ev = sub.add_parser("evaluate", help="evaluate a finished run's generator + verifier (optionally on another task)")
    ev.add_argument("--run", required=True, metavar="RUN_DIR")
    ev.add_argument("--task", help="another task's test split (transfer), e.g. math500")
    ev.add_argument("--split", choices=("test", "val"), default="test",
                    help="val: the task's validation split (training-distribution problems no stage trained on), "
                         "written to eval_val/; for choosing settings without looking at test")
    ev.add_argument("--set", dest="overrides", action="append", default=[])

    rep = sub.add_parser("report", help="write report.md and plots for one or more runs")
    rep.add_argument("runs", nargs="+", metavar="RUN_DIR")
    rep.add_argument("--recompute", action="store_true",
                     help="recompute every metrics.json from the run's saved candidates, labels and scores first "
                          "(done anyway for one written by older metrics code); nothing is sampled or scored")

    sub.add_parser("tasks", help="list the tasks and their options")
    _serve_commands(sub)
    return parser


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def _trained_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run", required=True, metavar="RUN_DIR",
                        help="a finished run directory (or a verifier checkpoint folder)")
    parser.add_argument("--variant", default="V-STaR", metavar="NAME",
                        help="score: V-STaR (log V(y|x), the paper's), 'V-STaR (mean log-prob)', "
                             "'V-STaR (DPO reward)', 'control: G_SFT likelihood', 'control: generator mean log-prob'")


def _serve_commands(sub) -> None:
    """``score``, ``best-of-n`` and ``serve``: a trained verifier at work."""
    score = sub.add_parser("score", help="score candidates (JSONL) with a run's verifier")
    _trained_args(score)
    score.add_argument("--input", required=True, metavar="FILE",
                       help='JSONL of {"prompt", "completions": [...], "finished"?} or of the samples format '
                            '{"prompt", "completion", "finished"}')
    score.add_argument("--out", required=True, metavar="FILE", help="JSONL to write (resumes a killed run)")

    best = sub.add_parser("best-of-n", help="sample n answers per prompt from G_T; the verifier picks one")
    _trained_args(best)
    best.add_argument("--input", metavar="FILE", help='JSONL of {"prompt", ...} (default with --task: its problems)')
    best.add_argument("--n", type=_positive_int, default=16, help="candidates per prompt (default 16)")
    best.add_argument("--out", required=True, metavar="FILE", help="JSONL of picks to write (resumes a killed run)")
    best.add_argument("--task", metavar="NAME", help="check the picks with this task's checker and print accuracy")
    best.add_argument("--split", default="test", choices=["sft", "query", "test"],
                      help="with --task and no --input: the split whose problems to answer")
    best.add_argument("--seed", type=int, default=0)
    best.add_argument("--temperature", type=float, default=None, help="default: the run's eval.temperature")
    best.add_argument("--max-new-tokens", type=_positive_int, default=None,
                      help="default: the run's sampling.max_new_tokens")

    serve = sub.add_parser("serve", help="HTTP server: /score, /best_of_n, /health, OpenRLHF's /get_reward")
    _trained_args(serve)
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--threads", type=int, default=None,
                       help="torch CPU threads (default: the run's run.threads; 0 = torch's default)")
    serve.add_argument("--max-batch", type=_positive_int, default=None,
                       help="sequences from concurrent requests scored together (default 32; 1: no batching)")
    serve.add_argument("--wait-ms", type=float, default=None,
                       help="how long to wait for more requests to batch while others are coming (default 5)")
    serve.add_argument("--max-body-bytes", type=_positive_int, default=None,
                       help="larger request bodies get 413 (default 32 MiB)")
    serve.add_argument("--max-sequences", type=_positive_int, default=None,
                       help="completions per request (n x prompts for /best_of_n); more get 413 (default 16384)")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        from vstar import commands

        return getattr(commands, "cmd_" + args.command.replace("-", "_"))(args) or 0
    except VstarError as exc:
        if args.debug:
            raise
        print(f"vstar: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        from vstar.rundir import RESOURCE_ERRNOS

        if args.debug or exc.errno not in RESOURCE_ERRNOS:
            raise
        where = f" ('{exc.filename}')" if exc.filename else ""
        print(f"vstar: error: {RESOURCE_ERRNOS[exc.errno]}{where}. Free some space or fix the "
              "permissions, then run the same command again (`vstar run --resume RUN_DIR` continues a run).",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        if args.command in ("score", "best-of-n"):
            print("vstar: interrupted; run the same command again to resume", file=sys.stderr)
        else:
            print("vstar: interrupted; resume with `vstar run --resume RUN_DIR`", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
