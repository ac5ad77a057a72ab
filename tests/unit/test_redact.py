"""Secrets never leave memory: masking of URLs and free text."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from migrator.errors import PlanError, PlanProblem
from migrator.plan.names import is_slot_of, legacy_slot_name, publication_name, slot_name
from migrator.redact import endpoint_of, redact_text, redact_url


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
