"""The connection to Ray, shared by every Ray backend (sampling, labeling, scoring).

Ray is imported only when ``connect`` is called (optional extra ``vstar[ray]``). ``connect``
reuses a running connection, joins the cluster at ``execution.address``, or starts a local
instance.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from vstar.config import Config
from vstar.errors import VstarError

log = logging.getLogger("vstar")

#: times Ray re-runs a task (or restarts an actor) whose worker process died
MAX_RETRIES = 3


def connect(config: Config):
    """The ``ray`` module, connected: an existing connection, ``execution.address``, or a new local instance."""
    try:
        import ray
    except ImportError as exc:
        raise VstarError(f"execution.backend=ray needs Ray: pip install 'vstar[ray]' ({exc}).") from None
    if ray.is_initialized():
        return ray
    address = config.execution.address or None
    # workers' output stays in Ray's session logs (/tmp/ray/session_latest/logs); errors still reach ray.get
    options: dict[str, Any] = {"include_dashboard": False, "logging_level": logging.WARNING, "log_to_driver": False}
    if address is None and not os.environ.get("RAY_ADDRESS"):
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # a private local instance needs no token
        options["num_cpus"] = max(os.cpu_count() or 1, config.execution.num_workers)
    try:
        ray.init(address=address, **options)
    except ConnectionError as exc:
        raise VstarError(f"execution.address: cannot reach a Ray cluster at {address!r} ({exc}).") from None
    log.info("Ray: %s", ray.cluster_resources())
    return ray
