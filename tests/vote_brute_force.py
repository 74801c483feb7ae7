"""Brute force over every k-subset for the vote estimators' tests."""

from __future__ import annotations

import itertools

import numpy as np


def brute_vote(answers, correct, k, weights=None, scores=None, answer_correct=None):
    """Every k-subset: the (weighted) plurality answer wins, tied answers share the credit.
    The vote returns the highest-scored of the subset's candidates with that answer (equal
    scores share; no scores: all equal, a uniformly random one) and is worth its
    ``correct``. With ``answer_correct`` it is the old rule instead: worth the answer's."""
    n = len(answers)
    weights = np.ones(n) if weights is None else weights
    scores = np.zeros(n) if scores is None else scores
    values = []
    for subset in itertools.combinations(range(n), k):
        votes = {}
        for i in subset:
            if answers[i] is not None:
                votes[answers[i]] = votes.get(answers[i], 0.0) + weights[i]
        if not votes:
            values.append(0.0)
            continue
        best = max(votes.values())
        credits = []
        for answer in (a for a, v in votes.items() if v >= best - 1e-12):
            members = [i for i in subset if answers[i] == answer]
            if answer_correct is not None:
                credits.append(answer_correct[members[0]])
                continue
            top = max(scores[i] for i in members)
            credits.append(np.mean([correct[i] for i in members if scores[i] == top]))
        values.append(np.mean(credits))
    return float(np.mean(values))
