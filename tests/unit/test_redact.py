"""Secrets never leave memory: masking of URLs and free text."""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from migrator.connstr import MalformedConnection, parse_mongodb, parse_mysql, parse_postgres
from migrator.errors import PlanError, PlanProblem
from migrator.plan.names import is_slot_of, legacy_slot_name, publication_name, slot_name
from migrator.redact import MALFORMED, endpoint_of, redact_text, redact_url, url_passwords


def test_redact_url_masks_password_keeps_host() -> None:
    url = "postgresql://app:hunter2@db.internal:5432/shop?sslmode=require&password=other"
    masked = redact_url(url)
    assert "hunter2" not in masked and "other" not in masked
    assert "db.internal:5432/shop" in masked and "app:" in masked


def test_endpoint_of_has_no_password() -> None:
    assert endpoint_of("mongodb://u:p%40ss@m1:27017/db?replicaSet=rs0") == "mongodb://u@m1:27017/db"
    assert endpoint_of("postgresql://h/db") == "postgresql://h/db"


def test_redact_text_masks_urls_params_and_literals() -> None:
    text = "failed for postgresql://u:pw1@h/db and password=pw2 (token pw3)"
    masked = redact_text(text, secrets=("pw3",))
    assert "pw1" not in masked and "pw2" not in masked and "pw3" not in masked
    assert "postgresql://u:***@h/db" in masked


@given(st.text(alphabet=st.characters(min_codepoint=48, max_codepoint=122), min_size=6, max_size=20))
def test_any_password_in_url_is_masked(password: str) -> None:
    if any(c in password for c in "@/:?#[]\\`^"):
        return
    assert password not in redact_url(f"postgresql://user:{password}@host:5432/db")
    assert password not in redact_text(f"url=mongodb://user:{password}@host/")


def test_slot_names_are_valid_and_distinct() -> None:
    run, other = "0123456789abcdef", "fedcba9876543210"
    a, b = slot_name("Shop-Orders", run), slot_name("shop_orders", run)
    assert a != b
    # The slot carries its run: two runs of one plan never share one (docs/architecture.md).
    assert slot_name("shop_orders", run) != slot_name("shop_orders", other)
    longest = slot_name("x" * 48, run)
    for name in (a, b, longest, legacy_slot_name("x" * 48), publication_name("x" * 48)):
        assert len(name) <= 63
        assert name.replace("_", "").isalnum() and name == name.lower()
    assert is_slot_of("x" * 48, longest) and is_slot_of("x" * 48, legacy_slot_name("x" * 48))
    assert not is_slot_of("x" * 47, slot_name("x" * 47 + "y", run))


def test_plan_error_lists_every_problem() -> None:
    error = PlanError(
        [PlanProblem("p.yaml", 3, 5, "source.url", "bad"), PlanProblem("p.yaml", 9, None, "", "worse")]
    )
    text = str(error)
    assert "p.yaml:3:5 at 'source.url': bad" in text
    assert "p.yaml:9: worse" in text
    assert error.exit_code == 2


# -- strict connection strings (migrator/connstr.py): refusals quote nothing -----------------------

SECRET = "Zq7-S3cret-Pw9x"


@pytest.mark.parametrize(
    "url",
    [
        f"postgresql://app:{SECRET}/shop",  # no @host: the password would be a port
        f"postgresql://app:{SECRET}:dbhost:5432/shop",
        f"app:{SECRET}@dbhost:5432/shop",  # no scheme
        f"postgresql:/app:{SECRET}@dbhost/shop",
        f"postgresql://app:{SECRET}@x@dbhost/shop",
        f"postgresql://app:{SECRET}/x@dbhost/shop",
        f"postgresql://app:{SECRET}#x@dbhost/shop",
        f"postgresql://app:{SECRET}?x@dbhost/shop",
        f"postgresql://app:{SECRET}%zz@dbhost/shop",
        f"postgresql://app:{SECRET}@dbhost:port/shop",
        f"postgresql://app:{SECRET}@dbhost:70000/shop",
        f"postgresql://dbhost/shop?{SECRET}=1",
        f"postgresql://app:{SECRET} @dbhost/shop",
        f"host=dbhost user=app password={SECRET} dbname=shop junk",
        f"host=dbhost user=app password='{SECRET}",
        f"host=dbhost user=app pasword={SECRET}",
        f"host=dbhost port={SECRET}",
    ],
)
def test_malformed_source_is_refused_without_quoting_it(url: str) -> None:
    with pytest.raises(MalformedConnection) as info:
        parse_postgres(url)
    assert SECRET not in str(info.value) and "Zq7" not in str(info.value)
    assert redact_url(url) == MALFORMED and endpoint_of(url) == MALFORMED
    assert SECRET in url_passwords(url)  # masked as a literal wherever it might still turn up


def test_a_mysql_url_is_no_postgresql_url_but_is_masked_as_one_of_its_own() -> None:
    url = f"mysql://app:{SECRET}@dbhost/shop"
    with pytest.raises(MalformedConnection) as info:
        parse_postgres(url)
    assert SECRET not in str(info.value)
    assert redact_url(url) == "mysql://app:***@dbhost/shop"
    assert endpoint_of(url) == "mysql://app@dbhost/shop"
    assert SECRET in url_passwords(url)


@pytest.mark.parametrize(
    "url",
    [
        f"mysql://app:{SECRET}@dbhost:port/shop",
        f"mysql://app:{SECRET}@x@dbhost/shop",
        f"mysql://app:{SECRET}@dbhost/shop?{SECRET}=1",
        f"mariadb://app:{SECRET}/shop",
    ],
)
def test_malformed_mysql_source_is_refused_without_quoting_it(url: str) -> None:
    with pytest.raises(MalformedConnection) as info:
        parse_mysql(url)
    assert SECRET not in str(info.value) and "Zq7" not in str(info.value)
    assert redact_url(url) == MALFORMED


@pytest.mark.parametrize(
    "url",
    [
        f"mongodb://app:{SECRET}/?replicaSet=rs0",
        f"mongodb://app:{SECRET}@x@m1:27017/",
        f"mongodb://app:{SECRET}:x@m1:27017/",  # ':' in a MongoDB password must be encoded
        f"mongodb://app:{SECRET}@m1:27017?replicaSet=rs0",
        f"app:{SECRET}@m1:27017/",
    ],
)
def test_malformed_target_is_refused_without_quoting_it(url: str) -> None:
    with pytest.raises(MalformedConnection) as info:
        parse_mongodb(url)
    assert SECRET not in str(info.value)


def test_key_value_strings_are_masked_and_named() -> None:
    text = f"host=db1 port=5433 user=app password='{SECRET} x' dbname=shop sslmode=require"
    info = parse_postgres(text)
    assert info.password == f"{SECRET} x" and info.endpoint == "postgresql://app@db1:5433/shop"
    masked = redact_url(text)
    assert SECRET not in masked and masked.startswith("host=db1 port=5433 user=app password=*** dbname=shop")
    assert SECRET not in redact_text(f"connecting with {text}")
    assert SECRET not in endpoint_of(text)


def test_wellformed_urls_keep_what_is_not_secret() -> None:
    info = parse_postgres(
        f"postgresql://app:{SECRET}%40x@[::1]:5433,db2/shop?sslpassword=k3y&sslmode=require"
    )
    assert info.password == f"{SECRET}@x" and info.hosts == ("[::1]:5433", "db2")
    assert info.endpoint == "postgresql://app@[::1]:5433,db2/shop"
    assert "k3y" in info.secrets and SECRET not in info.masked and "k3y" not in info.masked
    assert parse_mongodb(f"mongodb+srv://app:{SECRET}@cluster0.example.net/?retryWrites=true").endpoint == (
        "mongodb+srv://app@cluster0.example.net/"
    )


@given(st.text(min_size=6, max_size=24))
def test_any_raw_password_is_refused_or_kept_secret(password: str) -> None:
    # Written into a URL without percent-encoding, whatever it holds: either the string is refused
    # (quoting none of it), or the password is parsed as the password and shown nowhere.
    template = "postgresql://app:{}@dbhost:5432/shop"
    if password in template.format(""):
        return
    url = template.format(password)
    try:
        info = parse_postgres(url)
    except MalformedConnection as exc:
        message = str(exc)
        if password in message and password.swapcase() != password:
            # The refusal's fixed wording may hold the password by chance ('ource ' in "the
            # source URL"): then the same refusal of the password in other letter case must read
            # the same, which a message quoting the password would not.
            with pytest.raises(MalformedConnection) as other:
                parse_postgres(template.format(password.swapcase()))
            assert str(other.value) == message
            return
        assert password not in message
        return
    assert unquote(password) == info.password
    for shown in (info.endpoint, info.masked, redact_url(url), endpoint_of(url), redact_text(url)):
        assert password not in shown and info.password not in shown


@pytest.mark.parametrize(
    ("url", "parse", "expected"),
    [
        (
            "postgresql://app:s3cr%40t@db:5432/shop?sslmode=require&password=pw2",
            parse_postgres,
            "postgresql://app@db:5432/shop?sslmode=require",
        ),
        (
            "host=db port=5432 user=app password='s3 cr' dbname=shop",
            parse_postgres,
            "host=db port=5432 user=app dbname=shop",
        ),
        ("mysql://root:s3cret@127.0.0.1:3307/shop", parse_mysql, "mysql://root@127.0.0.1:3307/shop"),
        ("mongodb://u:s3cret@h1,h2/?replicaSet=rs0", parse_mongodb, "mongodb://u@h1,h2/?replicaSet=rs0"),
    ],
)
def test_without_secrets_is_the_same_connection_less_its_secrets(url: str, parse: Any, expected: str) -> None:
    # What `migrator init` writes into a plan: no password, and still a string the parser takes.
    info = parse(url)
    assert info.without_secrets == expected
    again = parse(expected)
    assert (again.user, again.hosts, again.database, again.password) == (
        info.user,
        info.hosts,
        info.database,
        None,
    )
