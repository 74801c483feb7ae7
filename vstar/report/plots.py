"""Plots: accuracy vs k for every method, with 95% confidence bands."""

from __future__ import annotations

from pathlib import Path


def plot_accuracy_vs_k(metrics_by_run: dict[str, dict], out_file: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5), dpi=120)
    for run_name, metrics in metrics_by_run.items():
        prefix = f"{run_name}: " if len(metrics_by_run) > 1 else ""
        for curve_name, points in metrics["curves"].items():
            ks = sorted(int(k) for k in points)
            means = [100 * points[str(k)]["mean"] for k in ks]
            lows = [100 * points[str(k)]["lo"] for k in ks]
            highs = [100 * points[str(k)]["hi"] for k in ks]
            style = "--" if curve_name.startswith("control") else (":" if "pass@k" in curve_name else "-")
            (line,) = ax.plot(ks, means, style, marker="o", markersize=3, label=prefix + curve_name)
            ax.fill_between(ks, lows, highs, color=line.get_color(), alpha=0.12)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("k (candidates per problem)")
    ax.set_ylabel("accuracy (%)")
    ax.set_title("Accuracy vs k (95% bootstrap CI)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.tight_layout()
    out_file.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_file, bbox_inches="tight")
    plt.close(fig)
    return out_file
