"""Schemathesis against the served OpenAPI document: no 5xx, responses and status codes as documented.

Over SQLite always and PostgreSQL when configured (PostgreSQL is the stricter one: NUL characters,
encodings). Examples per operation: EXCHANGE_SYNC_FUZZ_EXAMPLES (default 60). (schemathesis'
pytest plugin, ``from_fixture``, does not work with this pytest, so each operation's strategy is
driven by hypothesis directly.)
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from tests.support.api import running_api
from tests.support.db import DB_BACKENDS, database_url

EXAMPLES = int(os.environ.get("EXCHANGE_SYNC_FUZZ_EXAMPLES", "60"))
OPERATIONS = [
    "POST /api/v1/sources/{project}/{source}/sync",
    "GET /api/v1/sources/{project}/{source}/comments/{comment_id}",
    "DELETE /api/v1/sources/{project}/{source}/comments",
    "GET /api/_private/sources/{project}/{source}/comments",
    "PUT /api/_private/buckets/{owner}/{bucket}/emails",
    "GET /api/_private/buckets/{owner}/{bucket}/emails",
    "GET /api/v1/attachments/{attachment_reference}",
    "GET /api/v1/sources/{project}/{source}",
    "PUT /api/_private/sources/id:{source_id}/comments/{comment_id}/attachments/{attachment_index}",
    "GET /api/_private/sources/id:{source_id}/comments/{comment_id}/attachments",
]
# An opaque continuation token matches its documented pattern and is still refused unless this
# server issued it: "schema-valid yet rejected" is correct there.
# The bucket route repeats the sync route's machinery (gate, limits, validation): fewer examples
# keep its cost to a few seconds per backend.
FEWER = {"PUT /api/_private/buckets/{owner}/{bucket}/emails": 15, "GET /api/_private/buckets/{owner}/{bucket}/emails": 15,
         "GET /api/v1/attachments/{attachment_reference}": 15, "GET /api/v1/sources/{project}/{source}": 15,
         "PUT /api/_private/sources/id:{source_id}/comments/{comment_id}/attachments/{attachment_index}": 15,
         "GET /api/_private/sources/id:{source_id}/comments/{comment_id}/attachments": 15}
# A well-formed sha256 that nothing was stored under is a documented 404: valid yet rejected, too;
# so is an upload to, or the uploads of, a comment that does not exist.
NOT_CHECKED = {"GET /api/_private/sources/{project}/{source}/comments": [positive_data_acceptance],
               "GET /api/v1/attachments/{attachment_reference}": [positive_data_acceptance],
               "PUT /api/_private/sources/id:{source_id}/comments/{comment_id}/attachments/{attachment_index}":
                   [positive_data_acceptance],
               "GET /api/_private/sources/id:{source_id}/comments/{comment_id}/attachments": [positive_data_acceptance]}


@pytest.mark.parametrize("backend", DB_BACKENDS)
@pytest.mark.parametrize("label", OPERATIONS)
def test_fuzz_operation(backend: str, label: str, tmp_path: Path) -> None:
    with database_url(backend, tmp_path) as url, running_api(url) as api:
        schema = schemathesis.openapi.from_url(api.url + "/openapi.json", headers=api.headers())
        operations = {result.ok().label: result.ok() for result in schema.get_all_operations()}
        assert set(operations) == set(OPERATIONS)
        operation = operations[label]

        @given(case=operation.as_strategy())
        @settings(
            max_examples=min(EXAMPLES, FEWER.get(label, EXAMPLES)),
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def run(case: schemathesis.Case) -> None:
            case.call_and_validate(headers=api.headers(), excluded_checks=NOT_CHECKED.get(label, []))

        run()
