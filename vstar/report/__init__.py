"""The report of one or several runs: report.html (self-contained), report.md and PNG figures."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from vstar.errors import VstarError
from vstar.evaluation.metrics_files import refresh_metrics
from vstar.evaluation.monitors import run_monitors
from vstar.report import html as page
from vstar.report.compute import method_compute
from vstar.report.plots import plot_accuracy_vs_k, plot_compute, plot_iterations, plot_score_distributions
from vstar.report.text import COMPARISON_HEADER, comparison_rows, markdown_comparisons, markdown_table, table_rows
from vstar.rundir import read_jsonl, write_text

VSTAR_VARIANTS = ("V-STaR", "V-STaR (mean log-prob)", "V-STaR (DPO reward)")
MONITOR_NAMES = {"tokens_sampled": "tokens", "distinct_correct_per_problem": "distinct correct / problem",
                 "share_with_pairs": "share with pairs", "share_solved": "share solved"}


def _load(run: Path) -> dict:
    path = Path(run) / "eval" / "metrics.json"
    if not path.exists():
        raise VstarError(f"{path}: no metrics; run `vstar run --resume {run}` to finish the run first.")
    return json.loads(path.read_text())


def _transfers(run: Path) -> list[tuple[str, dict]]:
    """(task, metrics) of each finished transfer evaluation (eval_<task>/metrics.json)."""
    found = sorted(p for p in Path(run).glob("eval_*/metrics.json") if not p.parent.name.endswith("_rft"))
    return [(p.parent.name[len("eval_"):], json.loads(p.read_text())) for p in found]


def _point(metrics: dict, curve: str, k: int) -> float | None:
    point = metrics["curves"].get(curve, {}).get(str(k))
    return None if point is None else point["mean"]


def findings(metrics: dict, table_k: int) -> list[tuple[str, str]]:
    """Plain statements, worded only from the paired comparisons in ``metrics``: a method is
    said to be better than another only when the paired 95% interval of the difference
    excludes 0. Returns (css class, text) pairs."""
    out = []
    variants = {v: _point(metrics, f"{v} best-of-k", table_k) for v in VSTAR_VARIANTS}
    variants = {v: x for v, x in variants.items() if x is not None}
    if len(variants) > 1:
        out.append(("", f"DPO score variants, Best-of-{table_k}: "
                        + ", ".join(f"{v} {100 * x:.1f}%" for v, x in variants.items())
                        + " (point estimates; the paired comparisons say which differences are significant)."))
    share = metrics.get("diagnostics", {}).get("final", {}).get("right_answer_wrong_solution")
    if share:
        out.append(("", f"{100 * share:.1f}% of the final generator's test candidates reach a right answer "
                        "through a wrong solution; every selection rule, votes included, is credited with the "
                        "candidate it returns, so these count as wrong."))
    if "comparisons" not in metrics:
        out.append(("note", "Older metrics code wrote this metrics.json: it has no paired comparisons, so no "
                            "difference between methods is claimed, and its vote rows credit a right answer even "
                            "when the solutions giving it are wrong. `vstar report --recompute RUN_DIR` recomputes it."))
        return out
    return out + [comparison_finding(row) for row in metrics["comparisons"]]


def comparison_finding(row: dict) -> tuple[str, str]:
    """One paired comparison as a sentence (css class, text), worded from its verdict."""
    stated = (f"{row['a']} minus {row['b']}: {100 * row['diff']:+.1f} points, paired 95% interval "
              f"[{100 * row['lo']:+.1f}, {100 * row['hi']:+.1f}] over {row['n_problems']} problems: ")
    verdict = row["verdict"]
    if row["a_curve"] == "V-STaR best-of-k" and row["b_curve"].startswith("control: "):
        conclusion = {
            "A better": "the verifier adds information beyond this control.",
            "B better": "this control ranks the candidates better than the verifier.",
        }.get(verdict, "no significant difference; this run does not show that the verifier adds "
                       "information beyond this control.")
    else:
        conclusion = {"A better": f"{row['a']} is better.", "B better": f"{row['b']} is better."}.get(
            verdict, "no significant difference.")
    return ("good" if verdict == "A better" else "note", stated + conclusion)


def _score_histograms(run: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    scores_file, labels_file = run / "eval" / "scores.jsonl", run / "eval" / "labels.jsonl"
    if not scores_file.exists():
        return {}
    correct = {(c["problem_id"], c["sample_index"]): l["correct"]
               for c, l in zip(read_jsonl(run / "eval" / "candidates.jsonl"), read_jsonl(labels_file)) if c["source"] == "final"}
    rows = read_jsonl(scores_file)
    extra = run / "eval" / "classifier_scores.jsonl"
    if extra.exists():
        by_key = {(r["problem_id"], r["sample_index"]): r for r in read_jsonl(extra)}
        rows = [{**r, **by_key.get((r["problem_id"], r["sample_index"]), {})} for r in rows]
    names = {"verifier_logp_sum": "V-STaR log V(y|x)", "sft_logp_sum": "G_SFT log-likelihood",
             "orm_prob": "ORM P(correct)", "genrm_yes": "GenRM P(Yes)"}
    out = {}
    for column, title in names.items():
        if rows and column in rows[0]:
            flags = np.array([correct[(r["problem_id"], r["sample_index"])] for r in rows])
            values = np.array([r[column] for r in rows], dtype=float)
            out[title] = (values[flags], values[~flags])
    return out


def _run_section(run: Path, metrics: dict, out_dir: Path, multi: bool) -> tuple[list[str], list[str]]:
    """HTML and Markdown parts for one run."""
    table_k = max((row["k"] for row in metrics.get("table", [])), default=1)
    tag = f"_{run.name}" if multi else ""
    html_parts = [page.paragraph(f"{metrics['n_problems']} test problems, N = {metrics['n_candidates']} candidates "
                                 "each; 95% bootstrap intervals over problems. Differences between methods: "
                                 "paired bootstrap on the same problems (table below).", "muted")]
    html_parts.append(page.table(["method", "metric", "%", "95% CI"], [list(r) for r in table_rows(metrics)], 2))
    comparisons = comparison_rows(metrics)
    if comparisons:
        html_parts.append(page.section(f"Paired comparisons at k={table_k}",
                                       page.table(list(COMPARISON_HEADER), [list(r) for r in comparisons], 2)))
    stated = findings(metrics, table_k)
    html_parts += [page.paragraph(text, kind) for kind, text in stated]
    md = [f"## {run.name}", "", markdown_table(metrics), ""]
    if comparisons:
        md += [f"### Paired comparisons at k={table_k}", "", markdown_comparisons(metrics), ""]
    md += [f"- {text}" for _, text in stated] + [""]
    for name, transfer in _transfers(run):
        title = f"Transfer to {name}: G_T + V on {transfer['n_problems']} {name} test problems"
        html_parts.append(page.section(title, page.table(
            ["method", "metric", "%", "95% CI"], [list(r) for r in table_rows(transfer)], 2)))
        md += [f"### {title}", "", markdown_table(transfer), ""]
    verifier = run / "verifier" / "summary.json"
    if verifier.exists():
        held = json.loads(verifier.read_text()).get("heldout", {})
        if held.get("pairs"):
            rows = [[k.replace("accuracy_", ""), f"{100 * v:.1f}"] for k, v in held.items() if k.startswith("accuracy")]
            html_parts.append(page.section(f"Verifier pair accuracy on {held['pairs']} held-out pairs",
                                           page.table(["score", "% chosen ranked above rejected"], rows)))
    monitors = run_monitors(run)
    if monitors:
        keys = [k for k in monitors[0] if k != "iteration"]
        header = ["iteration"] + [MONITOR_NAMES.get(k, k) for k in keys]
        html_parts.append(page.section("Per-iteration monitors (training queries)", page.table(
            header, [[m["iteration"]] + [f"{m[k]:.3f}" if isinstance(m[k], float) else m[k] for k in keys] for m in monitors])))
        html_parts.append(page.img(plot_iterations({run.name: monitors}, out_dir / f"iterations{tag}.png"), "iterations"))
    compute = method_compute(run, metrics)
    html_parts.append(page.section("Compute per method (tokens)", page.table(
        ["method", "sampled", "trained", "verifier forward", "total"],
        [[m, f"{c['sampled']:,}", f"{c['trained']:,}", f"{c['verifier_forward']:,}", f"{c['total']:,}"] for m, c in compute.items()])))
    accuracy_curve = {"SFT": ("SFT pass@k", 1), "STaR†": ("STaR† pass@k", 1), "RFT": ("RFT pass@k", 1),
                      "V-STaR": ("V-STaR best-of-k", table_k), "V-STaR[1 iter]": ("V-STaR[1 iter] best-of-k", table_k),
                      "ORM": ("ORM best-of-k", table_k), "GenRM": ("GenRM best-of-k", table_k)}
    points = [(m, c["total"], _point(metrics, *accuracy_curve[m])) for m, c in compute.items() if m in accuracy_curve]
    points = [p for p in points if p[2] is not None and p[1] > 0]
    if points:
        html_parts.append(page.img(plot_compute(points, out_dir / f"compute{tag}.png"), "accuracy vs compute"))
    histograms = _score_histograms(run)
    if histograms:
        html_parts.append(page.img(plot_score_distributions(histograms, out_dir / f"scores{tag}.png"), "score distributions"))
    return html_parts, md


def _refresh(run: Path, force: bool) -> None:
    """Recompute the run's metrics.json files written by older metrics code (all, with ``force``).
    Unless forced, a run that cannot be recomputed is reported as it is, with a warning."""
    try:
        rewritten = refresh_metrics(run, force=force)
    except VstarError as error:
        if force:
            raise
        print(f"vstar: warning: {run}: metrics from older metrics code left as they are: {error}", file=sys.stderr)
        return
    for path in rewritten:
        print(f"vstar: recomputed {path} with the current metrics code", file=sys.stderr)


def write_report(runs: list[Path], out_dir: Path | None = None, recompute: bool = False) -> Path:
    """report.html + report.md + PNGs, in the run (one run) or ``out_dir`` (default ./report). Returns the HTML path.

    A run's metrics.json written by older metrics code is first recomputed from the run's
    saved candidates, labels and scores (every one, with ``recompute``): no sampling or scoring.
    """
    runs = [Path(r) for r in runs]
    for run in runs:
        _refresh(run, recompute)
    metrics = {r.name: _load(r) for r in runs}
    if len(metrics) < len(runs):
        raise VstarError("vstar report: runs to compare must have different directory names.")
    out_dir = Path(out_dir) if out_dir else (runs[0] if len(runs) == 1 else Path("report"))
    curve_png = plot_accuracy_vs_k(metrics, out_dir / "accuracy_vs_k.png")
    sections = [page.img(curve_png, "accuracy vs k")]
    markdown = ["# vstar report", "", f"![accuracy vs k]({curve_png.name})", ""]
    for run in runs:
        html_parts, md = _run_section(run, metrics[run.name], out_dir, len(runs) > 1)
        sections.append(page.section(f"Run {run.name}", *html_parts))
        markdown += md
    write_text(out_dir / "report.md", "\n".join(markdown))
    report = out_dir / "report.html"
    write_text(report, page.render("vstar report: " + ", ".join(metrics), sections))
    return report
