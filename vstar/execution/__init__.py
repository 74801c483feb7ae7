"""Where the heavy work runs: in this process (``execution.backend: local``) or on Ray (``ray``).

The Ray versions of sampling (``ray_sampling``), labeling and scoring (``ray_backend``),
over one connection (``ray_connection``), which imports Ray only when used (optional extra
``vstar[ray]``). The stages choose local or Ray; sampling, scoring and tasks know nothing of Ray.
"""
