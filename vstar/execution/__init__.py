"""Where the heavy work runs: in this process (``execution.backend: local``) or on Ray (``ray``).

``vstar.execution.ray_backend`` holds the Ray versions of sampling, labeling and scoring;
it imports Ray only when used (optional extra ``vstar[ray]``).
"""
