"""EWS test server: Exchange Web Services (SOAP) for exchangelib over in-memory mailboxes (docs/ews-test-server.md).

Test infrastructure (the exchange-sync-testservers distribution, testservers/), not part of exchange-sync.
"""
