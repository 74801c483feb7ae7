"""Checkers: math answer extraction and equivalence (with a worker pool), and the code sandbox."""
