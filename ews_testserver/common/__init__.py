"""Plumbing shared by the EWS test server (``ews_testserver``) and the Graph test server (``graph_testserver``).

- ``server``: threaded HTTP(S) server, TLS context, request log, handler base, background thread and
  the CLI's ready-JSON-line / signal handling.
- ``faults``: fault plan rules and their matching/counting.
- ``admin``: the ``/admin`` control API routes both servers answer the same way.
"""
