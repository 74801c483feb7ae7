"""A trained verifier at work: score candidates, best-of-n from G_T, a reward server.

    from vstar.serve import load_verifier
    verifier = load_verifier("runs/default")            # a run directory, or a verifier checkpoint
    verifier.score("2 5 2 3 -> 6\\n", ["...", "..."])      # log V(y|x) of each completion
    verifier.score(prompt, completions, variant="V-STaR (DPO reward)")
    picks = verifier.best_of_n(["2 5 2 3 -> 6\\n"], n=16)  # picks[0].completion, .score, .candidates

Importing it loads no torch and no model; models load on first use. ``vstar serve`` (``app``,
``server``) needs the optional ``serve`` extra (FastAPI, uvicorn). Builds on ``scoring``,
``sampling``, ``models``, ``rundir`` and ``config``; never on ``pipeline``, ``stages`` or
``commands`` (see docs/layout.md).
"""

from vstar.scoring.variants import PAPER_SCORE, VARIANT_COLUMNS
from vstar.serve.verifier import Candidate, Pick, Settings, Verifier, load_run, load_verifier

__all__ = ["PAPER_SCORE", "VARIANT_COLUMNS", "Candidate", "Pick", "Settings", "Verifier", "load_run", "load_verifier"]
