"""``db_url`` and ``api`` come from tests/support/fixtures.py."""
