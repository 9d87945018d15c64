"""The read-only comments page at ``/``: server-rendered HTML, no JavaScript.

Everything from mail is escaped by Jinja2's autoescape (a ``<script>`` in a subject renders as
text). Authentication when the server has a token: sign in once with the form (POST /login, the
token in the body, never in a URL); it sets an HttpOnly, SameSite=Strict cookie holding
``HMAC(token, "comments-page")`` (never the token). With ``--no-auth`` (loopback only) no login is
asked.
"""

from __future__ import annotations

from datetime import date, datetime, time, timezone
from typing import Any
from urllib.parse import parse_qs, urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import DictLoader, Environment, select_autoescape

from exchange_sync.api.auth import PAGE_COOKIE, page_authorised, page_cookie_value, token_matches
from exchange_sync.store import SqlStore

PAGE_SIZE = 50
MAX_FORM_BYTES = 16_384

SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}

_BASE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{% block title %}Comments{% endblock %} - exchange-sync</title>
<style>
body{font-family:system-ui,sans-serif;margin:1.5rem;color:#222}
table{border-collapse:collapse;width:100%}td,th{border-bottom:1px solid #ddd;padding:.3rem .5rem;text-align:left;vertical-align:top}
form.search{display:flex;flex-wrap:wrap;gap:.5rem;margin-bottom:1rem}label{display:flex;flex-direction:column;font-size:.8rem}
pre{white-space:pre-wrap;background:#f6f6f6;padding:.6rem;border-radius:4px}.error{color:#a00}.muted{color:#777}
</style></head><body>
<header><a href="/">Comments</a></header>
{% block content %}{% endblock %}
</body></html>"""

_LOGIN = """{% extends "base.html" %}{% block title %}Sign in{% endblock %}{% block content %}
<h1>Sign in</h1>
{% if error %}<p class="error" id="error">{{ error }}</p>{% endif %}
<form method="post" action="/login" id="login">
<label>API token <input type="password" name="token" autocomplete="current-password" required></label>
<input type="hidden" name="next" value="{{ next }}">
<button type="submit">Sign in</button>
</form>{% endblock %}"""

_LIST = """{% extends "base.html" %}{% block content %}
<h1>Comments</h1>
<form class="search" method="get" action="/" id="search">
<label>Source <select name="source">{% for s in sources %}<option value="{{ s }}"{% if s == source %} selected{% endif %}>{{ s }}</option>{% endfor %}</select></label>
<label>Mailbox <input name="mailbox" value="{{ f.mailbox }}"></label>
<label>Folder <input name="folder" value="{{ f.folder }}"></label>
<label>Sender domain <input name="sender_domain" value="{{ f.sender_domain }}"></label>
<label>From (UTC) <input type="datetime-local" name="since" value="{{ f.since }}"></label>
<label>Until (UTC) <input type="datetime-local" name="until" value="{{ f.until }}"></label>
<label>Text <input name="text" value="{{ f.text }}"></label>
<button type="submit">Search</button>
</form>
{% if error %}<p class="error" id="error">{{ error }}</p>{% endif %}
<p id="total">{{ total }} comment{{ "" if total == 1 else "s" }}{% if total %}, showing {{ offset + 1 }}-{{ offset + comments|length }}{% endif %}</p>
<table id="comments"><thead><tr><th>Time (UTC)</th><th>Mailbox</th><th>Folder</th><th>From</th><th>Subject</th></tr></thead><tbody>
{% for c in comments %}<tr class="comment" data-id="{{ c.id }}">
<td>{{ c.timestamp.strftime("%Y-%m-%d %H:%M:%S") }}</td><td>{{ c.user_properties.get("string:Mailbox", "") }}</td>
<td>{{ c.user_properties.get("string:Folder", "") }}</td><td>{{ c.message.from_ or "" }}</td>
<td><a class="open" href="/comment?{{ {"source": source, "id": c.id}|urlencode }}">{{ (c.message.subject.text if c.message.subject else "") or "(no subject)" }}</a></td>
</tr>{% endfor %}
</tbody></table>
<nav>{% if prev_query is not none %}<a id="prev" href="/?{{ prev_query }}">Previous</a> {% endif %}{% if next_query is not none %}<a id="next" href="/?{{ next_query }}">Next</a>{% endif %}</nav>
{% endblock %}"""

_VIEW = """{% extends "base.html" %}{% block title %}{{ subject or "(no subject)" }}{% endblock %}{% block content %}
<p><a href="/?{{ {"source": source}|urlencode }}">Back to {{ source }}</a></p>
<article id="comment" data-id="{{ c.id }}">
<h1 id="subject">{{ subject or "(no subject)" }}</h1>
<p class="muted">{{ c.timestamp.isoformat() }} &middot; id <code>{{ c.id }}</code>{% if c.thread_id %} &middot; thread <code>{{ c.thread_id }}</code>{% endif %}</p>
{% for m in c.messages %}<section class="message">
<table><tr><th>From</th><td>{{ m.from_ or "" }}</td></tr><tr><th>To</th><td>{{ m.to|join(", ") }}</td></tr>
{% if m.cc %}<tr><th>Cc</th><td>{{ m.cc|join(", ") }}</td></tr>{% endif %}
{% if m.sent_at %}<tr><th>Sent</th><td>{{ m.sent_at.isoformat() }}</td></tr>{% endif %}
{% if m.language %}<tr><th>Language</th><td>{{ m.language }}</td></tr>{% endif %}</table>
{% if loop.index0 > 0 and m.subject %}<h2>{{ m.subject.text }}</h2>{% endif %}
<h3>Body</h3><pre class="body">{{ m.body.text }}</pre>
{% if m.signature %}<h3>Signature</h3><pre class="signature">{{ m.signature.text }}</pre>{% endif %}
</section>{% endfor %}
<h3>Properties</h3><table id="properties">{% for key, value in c.user_properties|dictsort %}<tr><th>{{ key }}</th><td>{{ value }}</td></tr>{% endfor %}</table>
<h3>Attachments</h3>{% if c.attachments %}<table id="attachments"><tr><th>Name</th><th>Type</th><th>Size</th><th>Inline</th></tr>
{% for a in c.attachments %}<tr><td>{{ a.name }}</td><td>{{ a.content_type }}</td><td>{{ a.size }}</td><td>{{ "yes" if a.inline else "no" }}</td></tr>{% endfor %}</table>
{% else %}<p class="muted" id="attachments">None</p>{% endif %}
</article>{% endblock %}"""

_NOT_FOUND = """{% extends "base.html" %}{% block content %}<p class="error" id="error">{{ message }}</p>{% endblock %}"""

_env = Environment(
    loader=DictLoader({"base.html": _BASE, "login.html": _LOGIN, "list.html": _LIST, "view.html": _VIEW, "404.html": _NOT_FOUND}),
    autoescape=select_autoescape(default=True, default_for_string=True),
)

router = APIRouter(include_in_schema=False)


def _html(template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    return HTMLResponse(_env.get_template(template).render(**context), status_code=status_code, headers=SECURITY_HEADERS)


def _set_cookie(response: Response, request: Request) -> None:
    response.set_cookie(
        PAGE_COOKIE,
        page_cookie_value(request.app.state.api_token),
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )


def _safe_next(value: str | None) -> str:
    # Only same-site relative paths: no open redirect to another host ("//evil", "http://").
    if value and value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return "/"


def _guard(request: Request) -> Response | None:
    """None when the page may be shown; else the sign-in form. The token is never taken from the
    URL (a URL ends up in access logs, proxies and the browser's history): a ``?token=`` is ignored
    and the form says why."""
    if page_authorised(request):
        return None
    error = ("the token is not accepted in the address; sign in with the form"
             if "token" in request.query_params else None)
    remaining = [(k, v) for k, v in request.query_params.multi_items() if k != "token"]
    current = request.url.path + ("?" + urlencode(remaining) if remaining else "")
    return _html("login.html", 401, error=error, next=_safe_next(current))


@router.post("/login")
async def login(request: Request) -> Response:
    body = await request.body()  # ApiGate refused anything over MAX_FORM_BYTES while it streamed in
    if len(body) > MAX_FORM_BYTES:
        return _html("login.html", 413, error="form too large", next="/")
    form = parse_qs(body.decode("utf-8", "replace"))
    token = (form.get("token") or [""])[0]
    next_url = _safe_next((form.get("next") or ["/"])[0])
    expected = request.app.state.api_token
    if expected is None:
        return RedirectResponse(next_url, status_code=303, headers=SECURITY_HEADERS)
    if not token_matches(token, expected):
        return _html("login.html", 401, error="invalid token", next=next_url)
    response = RedirectResponse(next_url, status_code=303, headers=SECURITY_HEADERS)
    _set_cookie(response, request)
    return response


def _parse_time(value: str, *, end: bool) -> datetime | None:
    """'2026-11-02T09:30' (datetime-local), '2026-11-02' or full ISO-8601; naive means UTC.
    A bare date as the upper bound means the end of that day."""
    value = value.strip()
    if not value:
        return None
    if len(value) == 10:
        day = date.fromisoformat(value)
        moment = datetime.combine(day, time.max if end else time.min)
    else:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


@router.get("/", response_class=HTMLResponse)
def comments_page(request: Request) -> Response:
    guard = _guard(request)
    if guard is not None:
        return guard
    store: SqlStore = request.app.state.store
    params = request.query_params
    sources = store.list_sources()
    source = params.get("source") or (sources[0] if sources else "")
    if source and source not in sources:
        sources.append(source)
    f = {key: params.get(key, "") for key in ("mailbox", "folder", "sender_domain", "since", "until", "text")}
    try:
        page = max(int(params.get("page", "1") or "1"), 1)
    except ValueError:
        page = 1
    error = None
    comments: list[Any] = []
    total = 0
    try:
        filters = {
            "mailbox": f["mailbox"] or None,
            "folder": f["folder"] or None,
            "sender_domain": f["sender_domain"] or None,
            "since": _parse_time(f["since"], end=False),
            "until": _parse_time(f["until"], end=True),
            "text": f["text"] or None,
        }
    except (ValueError, OverflowError):
        error = "invalid date or time: use YYYY-MM-DD or YYYY-MM-DDTHH:MM (UTC)"
    else:
        if source:
            total = store.count_comments(source, **filters)
            comments = store.search_comments(source, **filters, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE)
    offset = (page - 1) * PAGE_SIZE
    base = {"source": source, **{k: v for k, v in f.items() if v}}
    prev_query = urlencode({**base, "page": page - 1}) if page > 1 else None
    next_query = urlencode({**base, "page": page + 1}) if offset + len(comments) < total else None
    return _html(
        "list.html",
        sources=sources,
        source=source,
        f=f,
        comments=comments,
        total=total,
        offset=offset,
        error=error,
        prev_query=prev_query,
        next_query=next_query,
    )


@router.get("/comment", response_class=HTMLResponse)
def comment_page(request: Request) -> Response:
    guard = _guard(request)
    if guard is not None:
        return guard
    source = request.query_params.get("source", "")
    comment_id = request.query_params.get("id", "")
    comment = request.app.state.store.get_comment(comment_id, source=source) if comment_id else None
    if comment is None:
        return _html("404.html", 404, message="comment not found")
    subject = comment.message.subject.text if comment.message.subject else ""
    return _html("view.html", c=comment, source=source, subject=subject)
