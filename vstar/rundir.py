"""The run directory: its layout, atomic writes, and stage markers for resume.

A stage is complete when its marker file (``.<stage>.done.json``) exists. The marker
is written last, after every output is durable, and records a fingerprint of what
the stage was computed from; a resumed run skips a stage whose marker matches and
redoes one whose inputs or settings changed.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterable, Iterator



class RunDir:
    """Paths of one run (see DESIGN.md, "run directory")."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    @property
    def config(self) -> Path:
        return self.root / "config.yaml"

    @property
    def base(self) -> Path:
        return self.root / "base"

    @property
    def sft(self) -> Path:
        return self.root / "sft"

    def iteration(self, t: int) -> Path:
        return self.root / f"iter_{t}"

    def generator(self, t: int) -> Path:
        """G_t; G_0 is G_SFT."""
        return self.sft if t == 0 else self.iteration(t) / "generator"

    @property
    def verifier(self) -> Path:
        return self.root / "verifier"

    @property
    def eval(self) -> Path:
        return self.root / "eval"

    def marker(self, stage: str) -> Path:
        """Completion marker of a stage: 'base', 'sft', 'iter_2.samples', 'verifier', 'eval'..."""
        return self.root / "markers" / f"{stage}.done.json"

    @property
    def log_file(self) -> Path:
        return self.root / "run.log"


# ---------------------------------------------------------------- atomic writes


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically: temp file, fsync, rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: str | Path, data: Any) -> None:
    write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def write_jsonl(path: str | Path, records: Iterable[dict]) -> None:
    write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))


def read_jsonl(path: str | Path) -> list[dict]:
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def iter_jsonl(path: str | Path) -> Iterator[dict]:
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                yield json.loads(line)


def replace_dir(tmp_dir: Path, final_dir: Path) -> None:
    """Move a finished temp directory into place, replacing any stale one."""
    if final_dir.exists():
        shutil.rmtree(final_dir)
    os.replace(tmp_dir, final_dir)
    _fsync_dir(final_dir.parent)


# ---------------------------------------------------------------- stage markers


def fingerprint(*parts: Any) -> str:
    """A short stable hash of JSON-serialisable settings and file contents."""
    digest = hashlib.sha256()
    for part in parts:
        if isinstance(part, Path):
            digest.update(file_hash(part).encode())
        else:
            digest.update(json.dumps(part, sort_keys=True, default=str).encode())
    return digest.hexdigest()[:16]


def file_hash(path: Path) -> str:
    """sha256 of a file's bytes ("missing" if there is none)."""
    path = Path(path)
    if not path.is_file():
        return "missing"
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def marker_key(marker: Path) -> str:
    """The key recorded in a marker ("missing" if the stage has not completed)."""
    try:
        return json.loads(Path(marker).read_text()).get("key", "missing")
    except (FileNotFoundError, json.JSONDecodeError):
        return "missing"


def is_done(marker: Path, key: str) -> bool:
    marker = Path(marker)
    if not marker.exists():
        return False
    try:
        return json.loads(marker.read_text()).get("key") == key
    except json.JSONDecodeError:
        return False


def mark_done(marker: Path, key: str, summary: dict | None = None) -> None:
    write_json(marker, {"key": key, "summary": summary or {}})


def read_summary(marker: Path) -> dict:
    marker = Path(marker)
    return json.loads(marker.read_text()).get("summary", {}) if marker.exists() else {}
