"""The run report links the comments page of the run's source (``comments_page_url``), and that
link opens the page on exactly that source, over HTTP."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
import requests

from exchange_sync.config import ConfigError, parse_config
from exchange_sync.pipeline.report import RunReport, comments_page_link, render_markdown
from tests.support.api import running_api
from tests.support.comments import make_comment


def _config(**extra):
    data = {"name": "acme", "connection": {"server_url": "https://mail.acme.example/EWS/Exchange.asmx",
                                           "auth": "ntlm", "username": "svc", "password": {"env": "PW"},
                                           "access_type": "delegate"},
            "mailboxes": [{"email": "ap@acme.example"}]}
    data.update(extra)
    return parse_config(data)


def test_link_follows_the_destination_and_is_only_there_when_configured():
    assert comments_page_link(_config()) is None
    store = _config(comments_page_url="https://sync.acme.example:8000/",
                    destination={"kind": "store", "project": "finance", "source": "ap-mail"})
    assert comments_page_link(store) == "https://sync.acme.example:8000/?source=finance%2Fap-mail"
    bucket = _config(comments_page_url="https://sync.acme.example",
                     destination={"kind": "reinfer_bucket", "url": "https://api.example", "owner": "o",
                                  "bucket": "b", "token": {"env": "T"}})
    assert comments_page_link(bucket) is None  # raw emails: not on the comments page
    for bad in ("sync.acme.example", "ftp://sync.acme.example", "https://sync.acme.example/?source=x"):
        with pytest.raises(ConfigError, match="comments_page_url"):
            _config(comments_page_url=bad)


def test_the_report_links_the_page_and_the_link_opens_that_source(db_url: str):
    with running_api(db_url, token=None) as api:
        api.store.sync_comments([make_comment(1, subject="Invoice one")], source="finance/ap-mail")
        api.store.sync_comments([make_comment(2, subject="Other source")], source="exchange-sync/mail")
        config = _config(comments_page_url=api.url, destination={"kind": "store", "url": db_url,
                                                                 "project": "finance", "source": "ap-mail"})
        report = RunReport(integration="acme", mode="incremental", started_at=datetime.now(timezone.utc),
                           page_link=comments_page_link(config))
        markdown = render_markdown(report)
        assert f"[Open the comments]({report.page_link})" in markdown
        page = requests.get(report.page_link, timeout=30)
        assert page.status_code == 200
        assert "Invoice one" in page.text and "Other source" not in page.text
