"""Tables of the embedded store and the state database (SQLAlchemy Core).

One ``MetaData`` holds everything: the comment store and the pipeline's state (watermarks,
deletions, rejections, usage, runs, mailbox statuses) may live in one database or two; creating
all tables in both is harmless and keeps "comments + watermark in one transaction" possible
whenever they share a URL.

Nothing here stores a secret: the store never receives credentials.
"""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    Dialect,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    Sequence,
    String,
    Table,
    Text,
)
from sqlalchemy.types import TypeDecorator

metadata = MetaData()


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend.

    PostgreSQL keeps ``timestamptz``; SQLite has no time zone type, so values are stored as naive
    UTC (which also makes SQLite's string comparison order correct) and given UTC back on read.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; use timezone-aware UTC values")
        value = value.astimezone(timezone.utc)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


# PostgreSQL allocates `seq` from a sequence (no lock shared by all writers); SQLite has none and
# computes max(seq)+1 inside its (already serialised) write transaction. See comments.py.
comment_seq = Sequence("exsync_comment_seq", metadata=metadata)

comments = Table(
    "exsync_comments",
    metadata,
    Column("source", String(512), nullable=False),
    Column("id", String(1024), nullable=False),
    # Bumped on every insert or change: a change feed order; never reused.
    Column("seq", BigInteger, nullable=False),
    Column("timestamp", UtcDateTime, nullable=False),
    Column("mailbox", Text, nullable=True),
    Column("folder", Text, nullable=True),
    Column("sender_domain", Text, nullable=True),
    # sha256 of the comment's text fields (see comments.text_fingerprint).
    Column("text_hash", String(64), nullable=False),
    # Lower-cased subject + body + signature, for the comments page's LIKE search.
    Column("search_text", Text, nullable=False),
    # The comment in the public API's JSON form (Comment.to_api()), canonical key order.
    Column("data", Text, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    PrimaryKeyConstraint("source", "id", name="pk_exsync_comments"),
    Index("ix_exsync_comments_source_ts_id", "source", "timestamp", "id"),
    Index("ix_exsync_comments_source_mailbox", "source", "mailbox"),
    Index("ix_exsync_comments_source_folder", "source", "folder"),
    Index("ix_exsync_comments_source_sender_domain", "source", "sender_domain"),
    Index("ix_exsync_comments_seq", "seq"),
)

folder_states = Table(
    "exsync_folder_states",
    metadata,
    Column("integration", String(255), nullable=False),
    Column("mailbox", String(320), nullable=False),
    Column("folder_id", String(1024), nullable=False),
    Column("folder_path", Text, nullable=False),
    Column("sync_state", Text, nullable=True),
    Column("items_synced", BigInteger, nullable=False, default=0),
    Column("last_synced_at", UtcDateTime, nullable=True),
    Column("last_error", Text, nullable=True),
    PrimaryKeyConstraint("integration", "mailbox", "folder_id", name="pk_exsync_folder_states"),
    CheckConstraint("items_synced >= 0", name="ck_exsync_folder_states_items_synced"),
)

deletions = Table(
    "exsync_deletions",
    metadata,
    Column("integration", String(255), nullable=False),
    Column("mailbox", String(320), nullable=False),
    Column("folder_id", String(1024), nullable=False),
    Column("item_id", String(1024), nullable=False),
    Column("deleted_at", UtcDateTime, nullable=False),
    PrimaryKeyConstraint("integration", "mailbox", "folder_id", "item_id", name="pk_exsync_deletions"),
)

rejections = Table(
    "exsync_rejections",
    metadata,
    Column("integration", String(255), nullable=False),
    Column("mailbox", String(320), nullable=False),
    Column("item_id", String(1024), nullable=False),
    Column("folder_path", Text, nullable=False),
    Column("message_id", Text, nullable=True),
    Column("reason", Text, nullable=False),
    Column("rejected_at", UtcDateTime, nullable=False),
    # A replayed batch rejects the same item again: one row per item, latest reason wins.
    PrimaryKeyConstraint("integration", "mailbox", "item_id", name="pk_exsync_rejections"),
)

usage = Table(
    "exsync_usage",
    metadata,
    Column("integration", String(255), nullable=False),
    Column("mailbox", String(320), nullable=False),
    Column("day", Date, nullable=False),
    Column("new", BigInteger, nullable=False, default=0),
    Column("updated_properties_only", BigInteger, nullable=False, default=0),
    Column("updated_text_changed", BigInteger, nullable=False, default=0),
    Column("unchanged", BigInteger, nullable=False, default=0),
    PrimaryKeyConstraint("integration", "mailbox", "day", name="pk_exsync_usage"),
)

runs = Table(
    "exsync_runs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("integration", String(255), nullable=False, index=True),
    Column("mode", String(32), nullable=False),
    Column("status", String(32), nullable=False),
    Column("started_at", UtcDateTime, nullable=False),
    Column("finished_at", UtcDateTime, nullable=True),
    Column("summary", Text, nullable=True),
)

mailbox_statuses = Table(
    "exsync_mailbox_statuses",
    metadata,
    Column("integration", String(255), nullable=False),
    Column("mailbox", String(320), nullable=False),
    Column("status", String(64), nullable=False),
    Column("reason", Text, nullable=True),
    Column("error_count", BigInteger, nullable=False, default=0),
    Column("updated_at", UtcDateTime, nullable=False),
    PrimaryKeyConstraint("integration", "mailbox", name="pk_exsync_mailbox_statuses"),
)

# Consecutive failures per mailbox and the "disabled" switch (DESIGN 1.11: errors disable precisely).
# Kept apart from exsync_mailbox_statuses (whose error_count is a lifetime total) so that table's
# meaning does not change. A row exists once a mailbox has been tried; no row = healthy, enabled.
mailbox_health = Table(
    "exsync_mailbox_health",
    metadata,
    Column("integration", String(255), nullable=False),
    Column("mailbox", String(320), nullable=False),
    # The reason of the current streak of failures (None after a success).
    Column("failure_reason", Text, nullable=True),
    Column("consecutive_failures", Integer, nullable=False, default=0),
    Column("disabled", Integer, nullable=False, default=0),  # 0/1: portable across SQLite and PostgreSQL
    Column("disabled_reason", Text, nullable=True),
    Column("disabled_at", UtcDateTime, nullable=True),
    Column("updated_at", UtcDateTime, nullable=False),
    PrimaryKeyConstraint("integration", "mailbox", name="pk_exsync_mailbox_health"),
)

# What a remote destination (the Re:infer API) has been sent: see destinations/reinfer.py.
# Keyed by a destination key (base URL + project/source) so two tenants never share entries.
destination_ledger = Table(
    "exsync_destination_ledger",
    metadata,
    Column("destination", String(1024), nullable=False),
    Column("id", String(1024), nullable=False),
    Column("text_hash", String(64), nullable=False),
    # The first-synced timestamp (frozen like the text); the text itself is not copied here.
    Column("timestamp", UtcDateTime, nullable=False),
    Column("synced_at", UtcDateTime, nullable=False),
    PrimaryKeyConstraint("destination", "id", name="pk_exsync_destination_ledger"),
)

# Folder discovery cache (exchange_sync.pipeline.folder_cache): the full folder list of a mailbox as
# JSON, so that a no-change poll sends no GetFolder/FindFolder. Refreshed every
# ``folder_refresh_minutes`` or when a cached folder is gone. Additive: nothing else reads it.
folder_lists = Table(
    "exsync_folder_lists",
    metadata,
    Column("integration", String(255), nullable=False),
    Column("mailbox", String(320), nullable=False),
    Column("folders", Text, nullable=False),
    Column("refreshed_at", UtcDateTime, nullable=False),
    PrimaryKeyConstraint("integration", "mailbox", name="pk_exsync_folder_lists"),
)

# What a source learnt about its server once (the EWS version exchangelib would otherwise probe with
# a ConvertId request on every run), keyed by integration and endpoint URL.
server_info = Table(
    "exsync_server_info",
    metadata,
    Column("integration", String(255), nullable=False),
    Column("endpoint", String(1024), nullable=False),
    Column("info", Text, nullable=False),
    Column("learned_at", UtcDateTime, nullable=False),
    PrimaryKeyConstraint("integration", "endpoint", name="pk_exsync_server_info"),
)

# Never two writers on a mailbox (issue #16): the lease a mailbox's incremental sync holds, taken by
# scheduled runs and by `exchange-sync watch` alike (exchange_sync.store.leases), and what the watcher
# last saw of the mailbox (`exchange-sync status`). ``owner`` is None when free; a holder renews
# ``expires_at`` while it syncs, so a crashed holder's lease simply expires.
mailbox_leases = Table(
    "exsync_mailbox_leases",
    metadata,
    Column("integration", String(255), nullable=False),
    Column("mailbox", String(320), nullable=False),
    Column("owner", String(512), nullable=True),  # host:pid:start:token:purpose of the holder
    Column("acquired_at", UtcDateTime, nullable=True),
    Column("expires_at", UtcDateTime, nullable=True),
    Column("watch_mode", String(32), nullable=True),  # streaming | pull | polling | graph_polling | stopped
    Column("watch_reason", Text, nullable=True),  # why a mailbox is polled instead of notified
    Column("watch_owner", String(512), nullable=True),
    Column("last_event_at", UtcDateTime, nullable=True),
    Column("last_sync_at", UtcDateTime, nullable=True),
    Column("last_lag_ms", BigInteger, nullable=True),  # oldest event covered by the last sync -> its commit
    Column("watch_updated_at", UtcDateTime, nullable=True),
    PrimaryKeyConstraint("integration", "mailbox", name="pk_exsync_mailbox_leases"),
)

# Integration errors as records (exchange_sync.store.errors, policy in exchange_sync.pipeline.outcome):
# one row per error a run met, with the hosted product's kind where it has one
# (invalid_exchange_credentials, mailbox_not_found, mailbox_access_denied, comment_quota_hit) and
# the action taken (mailbox_disabled, integration_disabled or none). Append-only; never a secret.
integration_errors = Table(
    "exsync_integration_errors",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("integration", String(255), nullable=False),
    Column("run_id", Integer, nullable=True),
    Column("kind", String(64), nullable=False),
    Column("mailbox", String(320), nullable=True),  # None: the integration as a whole
    Column("action", String(32), nullable=False),
    Column("reason", String(64), nullable=False),  # our failure reason the kind was mapped from
    Column("message", Text, nullable=False),
    Column("occurred_at", UtcDateTime, nullable=False),
    Index("ix_exsync_integration_errors_integration_time", "integration", "occurred_at"),
)

# The comments API's bucket route (PUT /api/_private/buckets/<owner>/<bucket>/emails, as the hosted
# integration loads raw emails): one row per (bucket, email id); a re-sent email replaces its row.
bucket_emails = Table(
    "exsync_bucket_emails",
    metadata,
    Column("bucket", String(512), nullable=False),
    Column("id", String(1024), nullable=False),
    Column("data", Text, nullable=False),  # the email as sent (JSON, canonical key order)
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    PrimaryKeyConstraint("bucket", "id", name="pk_exsync_bucket_emails"),
)

# What the bucket destination has sent (destinations/bucket.py), to count new / updated / unchanged
# like the sync endpoint does: fingerprints only, never the mail.
bucket_ledger = Table(
    "exsync_bucket_ledger",
    metadata,
    Column("destination", String(1024), nullable=False),
    Column("id", String(1024), nullable=False),
    Column("text_hash", String(64), nullable=False),  # the comment's text fingerprint (textpolicy)
    Column("payload_hash", String(64), nullable=False),  # sha256 of the email as sent
    Column("sent_at", UtcDateTime, nullable=False),
    PrimaryKeyConstraint("destination", "id", name="pk_exsync_bucket_ledger"),
)

# Items left out by participant filters, per (integration, mailbox, day): shown by `exchange-sync usage`
# next to the billed counts, never billed. A table of its own so exsync_usage keeps its columns
# (existing databases gain this table; nothing else changes). Written once per run, at its end.
usage_filtered = Table(
    "exsync_usage_filtered",
    metadata,
    Column("integration", String(255), nullable=False),
    Column("mailbox", String(320), nullable=False),
    Column("day", Date, nullable=False),
    Column("filtered", BigInteger, nullable=False, default=0),
    PrimaryKeyConstraint("integration", "mailbox", "day", name="pk_exsync_usage_filtered"),
)
