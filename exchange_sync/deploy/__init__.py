"""Running integrations as Prefect deployments: registration, start/stop, backfills, server limits.

- ``spec``: what a deployment of an integration looks like (one place; ``prefect.yaml`` is rendered
  from it, and ``exchange-sync deploy`` registers it through the API).
- ``register``: creates the work pool, the per-Exchange-server concurrency limits and the
  deployments, keeping a deployment's paused state (an operator's stop) across redeploys.
- ``control``: pause/resume an integration's deployments; pause the running one on bad credentials.
- ``limits``: the per-server slot the flow holds while it talks to Exchange.
- ``backfill``: windows split into chunks, each submitted once (idempotency key per chunk).
- ``resolve``: ``NAME|CONFIG`` arguments of the CLI -> an integration configuration.
"""
