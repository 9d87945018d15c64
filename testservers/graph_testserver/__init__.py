"""Microsoft Graph test server: Graph v1.0 mail over HTTPS for the Graph source (docs/graph.md).

Test infrastructure (the exchange-sync-testservers distribution, testservers/), not part of exchange-sync.
"""
