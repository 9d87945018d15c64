"""The participant filter's rules (pure) and the configuration's validation of its four lists."""

from __future__ import annotations

import pytest

from exchange_sync.config import MailboxConfig
from exchange_sync.pipeline.filters import ParticipantFilter, normalise_address, normalise_domain


def flt(**lists) -> ParticipantFilter:
    mb = MailboxConfig(email="ap@example.com", **lists)
    result = ParticipantFilter.of(mb)
    assert result is not None
    return result


def test_no_lists_no_filter():
    assert ParticipantFilter.of(MailboxConfig(email="ap@example.com")) is None


def test_address_allowlist_is_case_insensitive_on_any_participant():
    f = flt(participant_allowlist=["Jane@VIP.com"])
    assert f.keeps(["bob@x.org", "JANE@vip.COM"])
    assert not f.keeps(["bob@x.org", "jane@vip.com.evil.org"])
    assert not f.keeps([])


def test_domain_allowlist_includes_subdomains_only():
    f = flt(participant_domain_allowlist=["acme.com"])
    assert f.keeps(["a@acme.com"]) and f.keeps(["a@eu.ACME.com"])
    assert not f.keeps(["a@notacme.com"]) and not f.keeps(["a@acme.com.org"])


def test_deny_wins_over_allow():
    f = flt(participant_domain_allowlist=["acme.com"], participant_denylist=["boss@acme.com"],
            participant_domain_denylist=["spam.net"])
    assert f.verdict(["a@acme.com"]) is None
    assert f.verdict(["a@acme.com", "boss@acme.com"]) == "denylist"
    assert f.verdict(["a@acme.com", "x@mx.spam.net"]) == "denylist"
    assert f.verdict(["a@other.org"]) == "not_allowlisted"


def test_denylist_alone_keeps_everything_else():
    f = flt(participant_domain_denylist=["spam.net"])
    assert f.keeps(["a@other.org"]) and f.keeps([])
    assert not f.keeps(["a@spam.net"])


def test_either_allowlist_admits():
    f = flt(participant_allowlist=["jane@vip.com"], participant_domain_allowlist=["acme.com"])
    assert f.keeps(["jane@vip.com"]) and f.keeps(["x@acme.com"]) and not f.keeps(["x@other.org"])


def test_participants_without_an_smtp_address_are_ignored():
    f = flt(participant_domain_allowlist=["acme.com"])
    assert not f.keeps(["/o=ExchangeLabs/ou=Exchange Administrative Group/cn=Recipients/cn=jane"])
    assert f.keeps(["SMTP:jane@acme.com"])


def test_config_normalises_and_deduplicates():
    mb = MailboxConfig(email="ap@example.com", participant_allowlist=[" Jane@VIP.com ", "jane@vip.com", "mailto:b@x.org"],
                       participant_domain_denylist=["@Spam.NET", "*.spam.net", "spam.net."])
    assert mb.participant_allowlist == ["jane@vip.com", "b@x.org"]
    assert mb.participant_domain_denylist == ["spam.net"]


@pytest.mark.parametrize("field,value,fragment", [
    ("participant_allowlist", ["Jane <jane@vip.com>"], "is not an email address"),
    ("participant_denylist", ["not-an-address"], "is not an email address"),
    ("participant_allowlist", "jane@vip.com", "expected a list"),
    ("participant_domain_allowlist", ["jane@vip.com"], "is not a domain"),
    ("participant_domain_denylist", ["bad domain.com"], "is not a domain"),
    ("participant_domain_denylist", ["-bad.com"], "is not a domain"),
    ("participant_domain_allowlist", [42], "is not a domain"),
])
def test_config_refuses_garbage_with_the_field_named(field, value, fragment):
    from pydantic import ValidationError

    with pytest.raises(ValidationError) as info:
        MailboxConfig(email="ap@example.com", **{field: value})
    assert field in str(info.value) and fragment in str(info.value)


def test_normalisers():
    assert normalise_address("mailto:A@B.co") == "a@b.co"
    assert normalise_domain("*.Sub.Example.COM.") == "sub.example.com"
    assert normalise_domain("bücher.de") == "bücher.de"
