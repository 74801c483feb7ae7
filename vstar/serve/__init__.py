"""A trained verifier at work (to come): score candidates on request, best-of-n, a reward server.

Builds on ``scoring``, ``sampling``, ``models``, ``rundir`` and ``config``; never on
``pipeline``, ``stages`` or ``commands`` (see docs/layout.md).
"""
