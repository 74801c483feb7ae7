"""Plain-text tables of a run's metrics, for the terminal and for report.md."""

from __future__ import annotations


def table_rows(metrics: dict) -> list[tuple[str, str, str, str]]:
    rows = []
    for row in metrics.get("table", []):
        rows.append(
            (row["method"], row["metric"], f"{100 * row['mean']:.1f}", f"[{100 * row['lo']:.1f}, {100 * row['hi']:.1f}]")
        )
    return rows


def format_table(metrics: dict) -> str:
    """The summary table with 95% bootstrap intervals, in percent."""
    header = ("method", "metric", "%", "95% CI")
    rows = [header] + table_rows(metrics)
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = [
        f"Test problems: {metrics.get('n_problems')}, candidates per problem N = {metrics.get('n_candidates')}",
    ]
    for index, row in enumerate(rows):
        lines.append("  ".join(cell.ljust(width) if i < 2 else cell.rjust(width) for i, (cell, width) in enumerate(zip(row, widths))))
        if index == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown_table(metrics: dict) -> str:
    lines = ["| method | metric | % | 95% CI |", "|---|---|---:|---:|"]
    lines += [f"| {m} | {k} | {v} | {ci} |" for m, k, v, ci in table_rows(metrics)]
    return "\n".join(lines)
