"""What the EWS test server (``ews_testserver``) and the Graph test server (``graph_testserver``) share.

Test infrastructure (the ``exchange-sync-testservers`` distribution), not part of exchange-sync.

- ``mailstore``: in-memory mailboxes, folders, items and their change logs; ``ids``: the
  Exchange-shaped item/folder ids the store hands out; ``mimeinfo``: item properties from raw MIME.
- ``loaders``: the ``--mailbox`` specs (.eml folders, mbox files, ``generate:N``); ``generate``: the
  realistic, seeded generated mail.
- ``server``: threaded HTTP(S) server, TLS context, request log, handler base, background thread and
  the CLI's ready-JSON-line / signal handling.
- ``faults``: fault plan rules and their matching/counting.
- ``admin``: the ``/admin`` control API routes both servers answer the same way.
- ``audit``: the protocol audit (violations of Microsoft's schemas, per test).
- ``testing``: starting a server's CLI as a subprocess and the ``/admin`` client both servers share.
"""
