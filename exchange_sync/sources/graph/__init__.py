"""Exchange Online through Microsoft Graph (Prefect-free). See docs/graph.md.

    with GraphSource.from_config(config) as src:
        mb = src.open_mailbox("ap@acme.com")
        for folder in mb.mail_folders(allowlist, denylist):
            for page in mb.sync_pages(folder, state, page_size=512):   # one messages/delta GET per page
                result = mb.fetch(page.changes, folder)                # $batch of /messages/{id}/$value
"""

from .session import GraphMailboxSession
from .source import GraphSource

__all__ = ["GraphSource", "GraphMailboxSession"]
