"""Checkers: math answer extraction and equivalence (with a worker pool), and the verdicts on
programs from what the code sandbox (``vstar.sandbox``) reports."""
