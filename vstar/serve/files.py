"""``vstar score`` and ``vstar best-of-n`` over files: chunk by chunk, resumable.

Output records, one per input row, go to ``<out>.partial.jsonl`` a chunk at a time (fsync per
chunk) under a header that fingerprints the models, the settings and the input; a killed
command run again with the same arguments keeps the complete chunks and goes on from there,
and a partial file made for other inputs is started afresh. The output file is written
atomically at the end and the partial file removed. Best-of-n samples each chunk with a seed
fixed by the seed and the chunk's position, so a resumed run writes what an uninterrupted one
would.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Callable, Sequence

from vstar.progress import tqdm
from vstar.rundir import append_jsonl, fingerprint, read_partial_jsonl, write_jsonl
from vstar.serve.inputs import ScoreRow
from vstar.serve.verifier import Verifier, best_index

log = logging.getLogger("vstar")

#: sequences scored per chunk of ``vstar score``
SCORE_CHUNK = 512


def partial_path(out: Path) -> Path:
    """``picks.jsonl`` -> ``picks.partial.jsonl``."""
    out = Path(out)
    return out.with_name(out.name.removesuffix(".jsonl") + ".partial.jsonl")


def chunk_plan(sizes: Sequence[int], per_chunk: int) -> list[tuple[int, int]]:
    """Row ranges ``[start, end)`` of about ``per_chunk`` sequences each (rows of ``sizes``
    sequences; a row larger than that is a chunk alone)."""
    plan, start, total = [], 0, 0
    for index, size in enumerate(sizes):
        if total and total + size > per_chunk:
            plan.append((start, index))
            start, total = index, 0
        total += size
    if start < len(sizes):
        plan.append((start, len(sizes)))
    return plan


def run_chunks(out: Path, header: dict, plan: list[tuple[int, int]], sizes: Sequence[int],
               work: Callable[[int, int], list[dict]], desc: str) -> list[dict]:
    """``work(start, end)``'s records for each chunk of ``plan`` not already in the partial file,
    then all of them -> ``out``; returns the records."""
    partial = partial_path(out)
    records = resume_partial(partial, header, plan)
    if records:
        log.info("%s: resuming, %d of %d rows already done (%s)", desc, len(records), len(sizes), partial)
    with tqdm(total=sum(sizes), initial=sum(sizes[: len(records)]), desc=desc, unit="seq") as bar:
        for start, end in plan:
            if end <= len(records):
                continue
            new = work(start, end)
            append_jsonl(partial, new)
            records.extend(new)
            bar.update(sum(sizes[start:end]))
    write_jsonl(out, records)
    partial.unlink(missing_ok=True)
    return records


def resume_partial(partial: Path, header: dict, plan: list[tuple[int, int]]) -> list[dict]:
    """The records of the complete chunks in ``partial`` (the file is cut back to them), or a fresh
    file holding only ``header`` when it is missing or was made for other inputs."""
    lines = read_partial_jsonl(partial)
    records = lines[1:] if lines and lines[0] == header else []
    keep = max(end for end in [0] + [end for _, end in plan] if end <= len(records))
    records = records[:keep]
    if not lines or lines[0] != header or len(lines) - 1 != keep:
        partial.parent.mkdir(parents=True, exist_ok=True)
        write_jsonl(partial, [header] + records)
    return records


def model_fingerprint(verifier: Verifier, *models: str) -> list:
    return [Path(verifier.paths[m]) for m in models if verifier.paths[m]]


def score_file(verifier: Verifier, rows: list[ScoreRow], out: Path, *, variant: str,
               chunk_sequences: int = SCORE_CHUNK) -> list[dict]:
    """Score every row's completions with ``variant`` -> ``out``: a grouped row gets ``scores``
    and ``best`` (the first of the highest), a one-candidate row ``score``."""
    verifier.check_variant(variant)
    sizes = [len(row.completions) for row in rows]
    plan = chunk_plan(sizes, chunk_sequences)
    header = {"partial_of": fingerprint("score", model_fingerprint(verifier, "verifier", "sft", "generator"), variant,
                                        dataclasses.asdict(verifier.settings), plan, [r.record for r in rows])}

    def work(start: int, end: int) -> list[dict]:
        chunk = rows[start:end]
        scores = verifier.score_pairs([r.prompt for r in chunk for _ in r.completions],
                                      [c for r in chunk for c in r.completions],
                                      [f for r in chunk for f in r.finished], variant=variant)
        records, offset = [], 0
        for row in chunk:
            part = scores[offset : offset + len(row.completions)]
            offset += len(row.completions)
            if row.grouped:
                records.append({**row.record, "finished": list(row.finished), "variant": variant, "scores": part,
                                "best": best_index(part) if part else None})
            else:
                records.append({**row.record, "finished": row.finished[0], "variant": variant, "score": part[0]})
        return records

    return run_chunks(out, header, plan, sizes, work, desc=f"scoring ({variant})")


def chunk_seed(seed: int, start: int) -> int:
    """The sampling seed of the chunk starting at row ``start``."""
    return int(fingerprint("best-of-n chunk", seed, start)[:8], 16)


def best_of_n_file(verifier: Verifier, rows: list[dict], out: Path, *, n: int, variant: str, seed: int = 0,
                   temperature: float | None = None, max_new_tokens: int | None = None,
                   label: Callable[[int, list[str]], list[dict]] | None = None, label_key: str = "") -> list[dict]:
    """Best-of-n for every row's prompt -> ``out``: the row, the pick and all candidates with their
    scores. ``label(start, picked completions)``: the checker's verdicts of a chunk's picks (rows
    ``start``...), recorded as ``label`` and ``correct``; ``label_key`` names it in the header."""
    verifier.check_variant(variant)
    sizes = [n] * len(rows)
    plan = chunk_plan(sizes, max(n, verifier.settings.sampling_batch_size))
    header = {"partial_of": fingerprint("best-of-n", model_fingerprint(verifier, "verifier", "sft", "generator"), n,
                                        variant, seed, temperature, max_new_tokens, list(verifier.stop),
                                        dataclasses.asdict(verifier.settings), plan, rows, label_key)}

    def work(start: int, end: int) -> list[dict]:
        picks = verifier.best_of_n([row["prompt"] for row in rows[start:end]], n, variant=variant,
                                   seed=chunk_seed(seed, start), temperature=temperature, max_new_tokens=max_new_tokens)
        records = [{**row, **pick.to_record()} for row, pick in zip(rows[start:end], picks)]
        if label is not None:
            for record, verdict in zip(records, label(start, [pick.completion for pick in picks])):
                record.update(correct=bool(verdict["correct"]), label=verdict)
        return records

    return run_chunks(out, header, plan, sizes, work, desc=f"best-of-{n}")
