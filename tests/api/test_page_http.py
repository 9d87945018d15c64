"""The comments page's authentication and cookie, over HTTP (no browser needed)."""

from __future__ import annotations

import requests

from exchange_sync.api.auth import PAGE_COOKIE
from tests.support.api import ApiUnderTest, running_api
from tests.support.comments import make_comment


def test_token_in_url_is_refused_and_the_sign_in_form_sets_a_strict_httponly_cookie(api: ApiUnderTest) -> None:
    session = requests.Session()
    # A token in the address is not accepted (URLs end up in access logs, proxies, history).
    response = session.get(f"{api.url}/?token={api.token}&mailbox=x", allow_redirects=False, timeout=30)
    assert response.status_code == 401 and "set-cookie" not in response.headers
    assert "not accepted in the address" in response.text and api.token not in response.text
    assert 'name="next" value="/?mailbox=x"' in response.text
    response = session.post(f"{api.url}/login", data={"token": api.token, "next": "/?mailbox=x"},
                            allow_redirects=False, timeout=30)
    assert response.status_code == 303 and response.headers["location"] == "/?mailbox=x"
    cookie = response.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
    assert api.token not in cookie  # an HMAC of the token, not the token
    assert session.get(f"{api.url}/", timeout=30).status_code == 200
    # The page cookie does not open the API.
    api_call = session.get(f"{api.url}/api/_private/sources/a/b/comments", timeout=30)
    assert api_call.status_code == 401


def test_login_form(api: ApiUnderTest) -> None:
    session = requests.Session()
    bad = session.post(f"{api.url}/login", data={"token": "nope", "next": "/"}, allow_redirects=False, timeout=30)
    assert bad.status_code == 401 and PAGE_COOKIE not in session.cookies
    good = session.post(f"{api.url}/login", data={"token": api.token, "next": "//evil.example/"}, allow_redirects=False, timeout=30)
    assert good.status_code == 303 and good.headers["location"] == "/"  # no open redirect
    assert session.get(f"{api.url}/", timeout=30).status_code == 200


def test_no_auth_page_and_comment_view(db_url: str) -> None:
    with running_api(db_url, token=None) as api:
        api.store.sync_comments([make_comment(1, subject="Hello <there>")], source="p/s")
        page = requests.get(f"{api.url}/", timeout=30)
        assert page.status_code == 200 and "Hello &lt;there&gt;" in page.text
        assert page.headers["content-security-policy"].startswith("default-src 'none'")
        view = requests.get(f"{api.url}/comment", params={"source": "p/s", "id": make_comment(1).id}, timeout=30)
        assert view.status_code == 200 and "Please pay invoice 1." in view.text
        missing = requests.get(f"{api.url}/comment", params={"source": "p/s", "id": "ff"}, timeout=30)
        assert missing.status_code == 404
        bad_date = requests.get(f"{api.url}/", params={"since": "yesterday"}, timeout=30)
        assert bad_date.status_code == 200 and "invalid date" in bad_date.text
