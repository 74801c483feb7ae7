"""The report's figures, as PNG files: accuracy vs k with confidence bands, accuracy per
iteration, verifier score distributions, and accuracy vs compute."""

from __future__ import annotations

from pathlib import Path

import numpy as np

#: curves drawn in the main figure (pass@k is the oracle ceiling, dotted)
STYLES = {"pass@k": ":", "control": "--"}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, out_file: Path) -> Path:
    out_file.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_file, bbox_inches="tight")
    _pyplot().close(fig)
    return out_file


def plot_accuracy_vs_k(metrics_by_run: dict[str, dict], out_file: Path) -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(9, 5.5), dpi=110)
    for run_name, metrics in metrics_by_run.items():
        prefix = f"{run_name}: " if len(metrics_by_run) > 1 else ""
        for curve_name, points in metrics["curves"].items():
            ks = sorted(int(k) for k in points)
            mean = [100 * points[str(k)]["mean"] for k in ks]
            style = next((s for key, s in STYLES.items() if key in curve_name), "-")
            (line,) = ax.plot(ks, mean, style, marker="o", markersize=3, label=prefix + curve_name)
            ax.fill_between(ks, [100 * points[str(k)]["lo"] for k in ks], [100 * points[str(k)]["hi"] for k in ks],
                            color=line.get_color(), alpha=0.12)
    ax.set_xscale("log", base=2)
    all_ks = sorted({int(k) for m in metrics_by_run.values() for c in m["curves"].values() for k in c})
    ax.set_xticks(all_ks, [str(k) for k in all_ks])
    ax.set_xlabel("k (candidates per problem)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("Accuracy vs k, 95% bootstrap intervals")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7.5, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return _save(fig, out_file)


def plot_iterations(monitors_by_run: dict[str, list[dict]], out_file: Path) -> Path:
    """Training-query accuracy, pass@k and the share of problems that yield DPO pairs, per iteration."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    for run_name, monitors in monitors_by_run.items():
        prefix = f"{run_name}: " if len(monitors_by_run) > 1 else ""
        its = [m["iteration"] for m in monitors]
        for key, label in (("accuracy", "sample accuracy"), ("pass@16", "pass@16"), ("share_with_pairs", "share with pairs")):
            if monitors and key in monitors[0]:
                ax.plot(its, [100 * m[key] for m in monitors], marker="o", label=prefix + label)
    ax.set_xlabel("iteration t (samples from G_{t-1})")
    ax.set_ylabel("% of training queries / samples")
    ax.set_title("Self-improvement monitors")
    ax.set_xticks(sorted({m["iteration"] for ms in monitors_by_run.values() for m in ms}) or [1])
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, out_file)


def plot_score_distributions(scores: dict[str, tuple[np.ndarray, np.ndarray]], out_file: Path) -> Path:
    """Histograms of each verifier's scores for correct vs incorrect candidates."""
    plt = _pyplot()
    names = list(scores)
    fig, axes = plt.subplots(1, len(names), figsize=(3.6 * len(names), 3.2), dpi=110, squeeze=False)
    for ax, name in zip(axes[0], names):
        good, bad = scores[name]
        values = np.concatenate([good, bad])
        bins = np.linspace(values.min(), values.max(), 30) if len(values) and values.max() > values.min() else 10
        ax.hist(bad, bins=bins, alpha=0.55, label=f"incorrect ({len(bad)})", color="tab:red")
        ax.hist(good, bins=bins, alpha=0.55, label=f"correct ({len(good)})", color="tab:green")
        ax.set_title(name, fontsize=9)
        ax.legend(fontsize=7)
    fig.suptitle("Verifier scores of the final generator's test candidates", fontsize=10)
    fig.tight_layout()
    return _save(fig, out_file)


def plot_compute(points: list[tuple[str, float, float]], out_file: Path) -> Path:
    """Accuracy at the table's k against total tokens (sampled + trained + verifier forward)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    for label, tokens, accuracy in points:
        ax.scatter([tokens], [100 * accuracy], s=30)
        ax.annotate(label, (tokens, 100 * accuracy), fontsize=7, xytext=(4, 3), textcoords="offset points")
    ax.set_xscale("log")
    ax.set_xlabel("tokens (sampled + trained + verifier forward)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("Accuracy vs compute")
    ax.grid(True, alpha=0.3)
    return _save(fig, out_file)
