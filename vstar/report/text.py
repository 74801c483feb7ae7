"""Plain-text tables of a run's metrics, for the terminal and for report.md."""

from __future__ import annotations

COMPARISON_HEADER = ("A", "B", "A - B (points)", "paired 95% CI", "problems", "verdict")


def table_rows(metrics: dict) -> list[tuple[str, str, str, str]]:
    rows = []
    for row in metrics.get("table", []):
        rows.append(
            (row["method"], row["metric"], f"{100 * row['mean']:.1f}", f"[{100 * row['lo']:.1f}, {100 * row['hi']:.1f}]")
        )
    return rows


def comparison_rows(metrics: dict) -> list[tuple[str, ...]]:
    """The paired comparisons (metrics.json's ``comparisons``) as text cells, in points."""
    return [
        (row["a"], row["b"], f"{100 * row['diff']:+.1f}", f"[{100 * row['lo']:+.1f}, {100 * row['hi']:+.1f}]",
         str(row["n_problems"]), row["verdict"])
        for row in metrics.get("comparisons", [])
    ]


def _aligned(rows: list[tuple[str, ...]], left_columns: int) -> list[str]:
    """Rows (the first one a header) as aligned text, with a rule under the header."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for index, row in enumerate(rows):
        cells = [cell.ljust(width) if i < left_columns else cell.rjust(width) for i, (cell, width) in enumerate(zip(row, widths))]
        lines.append("  ".join(cells).rstrip())
        if index == 0:
            lines.append("  ".join("-" * w for w in widths))
    return lines


def format_table(metrics: dict) -> str:
    """The summary table with 95% bootstrap intervals, in percent, and the paired comparisons."""
    lines = [f"Test problems: {metrics.get('n_problems')}, candidates per problem N = {metrics.get('n_candidates')}"]
    lines += _aligned([("method", "metric", "%", "95% CI")] + table_rows(metrics), 2)
    comparisons = comparison_rows(metrics)
    if comparisons:
        lines += ["", "Paired comparisons (same problems, paired bootstrap of the difference):"]
        lines += _aligned([COMPARISON_HEADER] + comparisons, 2)
    return "\n".join(lines)


def markdown_table(metrics: dict) -> str:
    lines = ["| method | metric | % | 95% CI |", "|---|---|---:|---:|"]
    lines += [f"| {m} | {k} | {v} | {ci} |" for m, k, v, ci in table_rows(metrics)]
    return "\n".join(lines)


def markdown_comparisons(metrics: dict) -> str:
    """The paired comparisons as a Markdown table ("" when metrics.json has none)."""
    rows = comparison_rows(metrics)
    if not rows:
        return ""
    lines = ["| " + " | ".join(COMPARISON_HEADER) + " |", "|---|---|---:|---:|---:|---|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)
