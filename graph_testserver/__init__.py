"""Microsoft Graph test server: Graph v1.0 mail over HTTPS for the Graph source (docs/graph.md)."""
