"""The run directory: its layout, atomic writes, and stage markers for resume.

Every file is written atomically (temp file, fsync, rename) and every model folder is
written as ``<name>.tmp`` and moved into place when durable. A stage is complete when
its marker (``markers/<stage>.done.json``) exists: written last, it records the stage's
key, the fingerprints it was computed from (settings, input files) and a fingerprint of
each output. A resumed run skips a stage whose key matches and whose outputs still hold
what they held; it redoes one whose inputs, settings or outputs changed. Long stages
checkpoint within themselves: sampling appends finished chunks to a ``.partial.jsonl``
file (``append_jsonl``, ``read_partial_jsonl``), training keeps Trainer checkpoints.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterable, Iterator

from vstar.errors import VstarError


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
    """Write ``text`` to ``path`` atomically: temp file, fsync, rename.

    On failure the old file (if any) is untouched and the temp file is removed; a full disk
    or an unwritable folder raises ``VstarError`` naming the file.
    """
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except BaseException as exc:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        _raise_if_resource(exc, path)
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


def fsync_tree(root: Path) -> None:
    """fsync every file and folder under ``root`` (a model dir written by libraries that do not)."""
    root = Path(root)
    for folder, _, names in os.walk(root):
        for name in names:
            path = Path(folder) / name
            if path.is_file() and not path.is_symlink():
                fd = os.open(path, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
        _fsync_dir(Path(folder))


def replace_dir(tmp_dir: Path, final_dir: Path) -> None:
    """Move a finished temp directory into place, replacing any stale one.

    The temp dir is made durable first; a stale final dir is renamed aside before the
    new one takes its name, so at every moment ``final_dir`` is either absent, the old
    directory or the complete new one.
    """
    tmp_dir, final_dir = Path(tmp_dir), Path(final_dir)
    fsync_tree(tmp_dir)
    stale = final_dir.with_name(f".{final_dir.name}.stale")
    shutil.rmtree(stale, ignore_errors=True)
    if final_dir.exists():
        os.replace(final_dir, stale)
    os.replace(tmp_dir, final_dir)
    _fsync_dir(final_dir.parent)
    shutil.rmtree(stale, ignore_errors=True)


# ---------------------------------------------------------------- resource errors

#: errors of the machine rather than of vstar: errno -> what to tell the user
RESOURCE_ERRNOS = {
    errno.ENOSPC: "no space left on device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
}
#: a stage that fails while the run's disk has less free space than this is reported as "disk full"
LOW_DISK_BYTES = 16 << 20


def _raise_if_resource(exc: BaseException, path: Path) -> None:
    if isinstance(exc, OSError) and exc.errno in RESOURCE_ERRNOS:
        raise VstarError(
            f"cannot write '{path}': {RESOURCE_ERRNOS[exc.errno]}. Nothing was half-written; free some space "
            "or fix the folder's permissions, then run the same command again (`vstar run --resume RUN_DIR`)."
        ) from exc


def resource_problem(exc: BaseException, root: Path) -> str | None:
    """One sentence when ``exc`` comes from the machine (disk full, quota, no permission), else None.

    Libraries that write checkpoints (torch, safetensors) may wrap the OS error in their own; then
    a nearly full disk under ``root`` is taken as the cause.
    """
    seen = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno in RESOURCE_ERRNOS:
            where = f" ('{seen.filename}')" if seen.filename else ""
            return f"{RESOURCE_ERRNOS[seen.errno]}{where}."
        seen = seen.__cause__ or seen.__context__
    try:
        free = shutil.disk_usage(root).free
    except OSError:
        return None
    if free >= LOW_DISK_BYTES:
        return None
    detail = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
    return f"the disk holding '{root}' is full, {free} bytes free ({type(exc).__name__}: {detail})."


def remove_stray_temp_files(root: Path) -> int:
    """Delete the temp files a killed ``write_text`` left under ``root``; returns how many."""
    removed = 0
    for path in Path(root).rglob(".*.tmp"):
        if path.is_file() and path.name.count(".") >= 3:  # ".<name>.<random>.tmp" from write_text
            path.unlink(missing_ok=True)
            removed += 1
    return removed


# ---------------------------------------------------------------- partial files (resume within a stage)


def append_jsonl(path: str | Path, records: Iterable[dict]) -> None:
    """Append ``records`` to ``path`` and make them durable (one fsync per call)."""
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    try:
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as exc:
        _raise_if_resource(exc, Path(path))
        raise


def read_partial_jsonl(path: str | Path) -> list[dict]:
    """The complete lines of a file that a killed process may have left half-written.

    A torn last line (no newline, or not valid JSON) is cut off the file, so appending
    can go on from a clean end. A missing file reads as no records.
    """
    path = Path(path)
    if not path.exists():
        return []
    data = path.read_bytes()
    end = data.rfind(b"\n") + 1  # 0 when there is no complete line
    records = []
    for line in data[:end].splitlines():
        if line.strip():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                break  # a damaged line: keep what came before it
    kept = b"".join(json.dumps(r, ensure_ascii=False).encode() + b"\n" for r in records)
    if kept != data:
        write_text(path, kept.decode())
    return records


# ---------------------------------------------------------------- stage markers


#: files larger than this are fingerprinted by size and modification time, not read
#: (hashing a 7B model's 14 GB on every resume would cost minutes)
LARGE_FILE_BYTES = 256 << 20


def fingerprint(*parts: Any) -> str:
    """A short stable hash of JSON-serialisable settings and of files or folders (``Path`` parts)."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(json.dumps(_with_file_hashes(part), sort_keys=True, default=str).encode())
    return digest.hexdigest()[:16]


def _with_file_hashes(value: Any) -> Any:
    """``value`` with every ``Path`` in it (nested in lists, tuples, dicts) replaced by its fingerprint."""
    if isinstance(value, Path):
        return {"path_fingerprint": path_fingerprint(value)}
    if isinstance(value, (list, tuple)):
        return [_with_file_hashes(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _with_file_hashes(v) for k, v in value.items()}
    return value


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


def path_fingerprint(path: str | Path) -> str:
    """What a file or folder holds: sha256 of a file; for a folder, of every file's name and
    hash (files over ``LARGE_FILE_BYTES``: size and mtime instead). "missing" if absent."""
    path = Path(path)
    if path.is_file():
        return _large_file_id(path) or file_hash(path)
    if not path.is_dir():
        return "missing"
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(f"{file.relative_to(path).as_posix()}\0{_large_file_id(file) or file_hash(file)}\n".encode())
    return digest.hexdigest()


def _large_file_id(path: Path) -> str | None:
    stat = path.stat()
    return f"size={stat.st_size},mtime={stat.st_mtime_ns}" if stat.st_size > LARGE_FILE_BYTES else None


def _read_marker(marker: Path) -> dict:
    try:
        data = json.loads(Path(marker).read_text())
    except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def marker_key(marker: Path) -> str:
    """The key recorded in a marker ("missing" if the stage has not completed)."""
    return _read_marker(marker).get("key", "missing")


def is_done(marker: Path, key: str) -> bool:
    """True when the marker records ``key`` and every output it lists still holds what it held."""
    data = _read_marker(marker)
    if data.get("key") != key:
        return False
    root = Path(marker).parent.parent
    return all(path_fingerprint(root / name) == recorded for name, recorded in data.get("outputs", {}).items())


def mark_done(
    marker: Path, key: str, summary: dict | None = None, outputs: Iterable[Path] = (), inputs: dict | None = None
) -> None:
    """Record that a stage finished: its key, what the key was computed from (``inputs``: a
    fingerprint per named input), its summary, and a fingerprint of each output (paths inside
    the run directory, which is the marker folder's parent)."""
    root = Path(marker).parent.parent
    recorded = {Path(p).relative_to(root).as_posix(): path_fingerprint(p) for p in outputs}
    write_json(marker, {"key": key, "inputs": inputs or {}, "outputs": recorded, "summary": summary or {}})


def clear_marker(marker: Path) -> None:
    """Forget that a stage finished (before redoing it)."""
    marker = Path(marker)
    if marker.exists():
        marker.unlink()
        _fsync_dir(marker.parent)


def read_summary(marker: Path) -> dict:
    return _read_marker(marker).get("summary", {})
