"""Running integrations as Prefect deployments: registration, start/stop, backfills, server limits.

- ``spec``: what the deployments of an integration look like (one place; ``prefect.yaml`` is rendered
  from it, and ``exchange-sync deploy`` registers it through the API): the poll (or its shards), the
  backfill deployment, and with ``watch.enabled`` the watch deployment.
- ``form`` (EWS) and ``graph_form`` (Graph): the configuration as flow parameters the Prefect UI
  renders as a form, and back.
- ``register``: creates the work pool, the per-server concurrency limits and the deployments,
  keeping a deployment's paused state (an operator's stop) and edits made in the UI (``drift``).
- ``control``: pause/resume an integration's deployments and cancel/start its watch runs; pause the
  running one on bad credentials.
- ``limits``: the per-server slot the flow holds while it talks to Exchange.
- ``backfill``: windows split into chunks, each submitted once (idempotency key per chunk).
- ``resolve``: ``NAME|CONFIG`` arguments of the CLI -> an integration configuration.
- ``names``: deployment, tag and server names; ``watch_report``: what a watch run shows in Prefect.

Prefect-free at import time; the flows (``flows/``) are imported only to read their parameter schema.
"""
