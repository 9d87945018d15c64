"""Exchange Web Services (Exchange 2007 SP1 to Exchange Online), through exchangelib's transport with our
own services layer (one class per EWS operation, services.py). Prefect-free. See docs/source.md.

    with EwsSource.from_config(config) as src:
        mb = src.open_mailbox("ap@acme.com")
        for folder in mb.mail_folders(allowlist, denylist):
            for page in mb.sync_pages(folder, state, page_size=512):   # 1 SyncFolderItems per page
                result = mb.fetch(page.changes, folder)                # GetItem, chunked by size
                ... stage + load result.table, then commit page.sync_state
"""

from .source import EwsSource, MailboxSession

__all__ = ["EwsSource", "MailboxSession"]
