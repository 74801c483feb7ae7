"""Logging to the console and to the run directory; quieter third-party libraries."""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path


def setup_logging(log_file: Path | None = None, debug: bool = False) -> None:
    logger = logging.getLogger("vstar")
    logger.setLevel(logging.DEBUG if debug else logging.INFO)
    logger.propagate = False
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
    console = logging.StreamHandler()
    console.setFormatter(logging.Formatter("[vstar %(asctime)s] %(message)s", "%H:%M:%S"))
    logger.addHandler(console)
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        to_file = logging.FileHandler(log_file)
        to_file.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        logger.addHandler(to_file)
    quiet_libraries(debug)


def quiet_libraries(debug: bool = False) -> None:
    """Keep the trainers' progress bars, drop the per-map and per-load chatter."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    if debug:
        return
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=UserWarning, module="trl")
    try:
        import datasets
        import transformers

        datasets.disable_progress_bars()
        datasets.logging.set_verbosity_error()
        transformers.logging.set_verbosity_error()
        transformers.utils.logging.disable_progress_bar()
    except ImportError:
        pass
