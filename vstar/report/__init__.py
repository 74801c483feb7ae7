"""The report: a Markdown file with the metrics table and plots, per run or comparing runs."""

from __future__ import annotations

import json
from pathlib import Path

from vstar.errors import VstarError
from vstar.report.plots import plot_accuracy_vs_k
from vstar.report.text import markdown_table
from vstar.rundir import write_text


def _load(run: Path) -> dict:
    path = Path(run) / "eval" / "metrics.json"
    if not path.exists():
        raise VstarError(f"{path}: no metrics; run `vstar run --resume {run}` to finish the run first.")
    return json.loads(path.read_text())


def write_report(runs: list[Path], out_dir: Path | None = None) -> Path:
    """Write report.md (+ accuracy_vs_k.png) into the run (one run) or ``out_dir`` (default ./report)."""
    runs = [Path(r) for r in runs]
    metrics = {r.name: _load(r) for r in runs}
    out_dir = Path(out_dir) if out_dir else (runs[0] if len(runs) == 1 else Path("report"))
    plot = plot_accuracy_vs_k(metrics, out_dir / "accuracy_vs_k.png")
    parts = ["# vstar report", ""]
    for name, m in metrics.items():
        parts += [f"## {name}", "", f"{m['n_problems']} test problems, N = {m['n_candidates']} candidates each.", "",
                  markdown_table(m), ""]
        compute = m.get("compute", {})
        if compute:
            parts += ["Compute: " + ", ".join(f"{k} = {v}" for k, v in compute.items()), ""]
    parts += [f"![accuracy vs k]({plot.name})", ""]
    report = out_dir / "report.md"
    write_text(report, "\n".join(parts))
    return report
