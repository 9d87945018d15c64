"""Running integrations as Prefect deployments: registration, start/stop, backfills, server limits.

- ``spec``: what the deployments of an integration look like (one place; ``prefect.yaml`` is rendered
  from it, and ``exchange-sync deploy`` registers it through the API): the poll (or its shards), the
  backfill deployment, and with ``watch.enabled`` the watch deployment.
- the configuration as flow parameters the Prefect UI renders as a form, and back, is
  ``exchange_sync.forms`` (the flows use it at run time; ``spec`` renders it, ``register`` titles it).
- ``register``: creates the work pool, the per-server concurrency limits and the deployments,
  keeping a deployment's paused state (an operator's stop) and edits made in the UI (``drift``).
- ``control``: pause/resume an integration's deployments and cancel/start its watch runs (a run pausing
  its own integration on bad credentials is ``tasks.deployments.pause_current_integration``).
- ``backfill``: windows split into chunks, each submitted once (idempotency key per chunk).
- ``resolve``: ``NAME|CONFIG`` arguments of the CLI -> an integration configuration.
- ``names``: deployment, tag and server names.

What the flows need at run time lives below them, never here: the form models (``exchange_sync.forms``),
the per-server slot and the pausing of an integration's deployments by a run (``tasks.limits``,
``tasks.deployments``; ``control`` and ``register`` use the same lookups).

Prefect-free at import time; the flows (``flows/``) are imported only to read their parameter schema.
"""
