"""Plan format v1: golden valid and invalid plans, expansion, secrets, fuzzing."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from migrator.errors import PlanError
from migrator.plan import load_plan, parse_plan, plan_json_schema

PLANS = Path(__file__).parent.parent / "plans"
ENV = {"MIGRATOR_SOURCE_URL": "postgresql://app:s3cret-pw@db:5432/app", "MIGRATOR_TARGET_URL": "mongodb://m/"}
_EXPECT = re.compile(r"^# expect: (\d+): (.+)$")


@pytest.mark.parametrize("path", sorted((PLANS / "valid").glob("*.yaml")), ids=lambda p: p.stem)
def test_valid_plans_load(path: Path) -> None:
    plan = load_plan(path, env=ENV)
    assert plan.version == 1
    assert plan.collections


@pytest.mark.parametrize("path", sorted((PLANS / "invalid").glob("*.yaml")), ids=lambda p: p.stem)
def test_invalid_plans_fail_with_file_line_and_text(path: Path) -> None:
    expect = _EXPECT.match(path.read_text().splitlines()[0])
    assert expect, f"{path} must start with '# expect: LINE: TEXT'"
    line, text = int(expect.group(1)), expect.group(2)
    with pytest.raises(PlanError) as info:
        load_plan(path, env=ENV)
    message = str(info.value)
    assert f"{path}:{line}" in message, message
    assert text in message, message
    assert "Traceback" not in message


def test_name_defaults_to_file_name(tmp_path: Path) -> None:
    source = (PLANS / "valid" / "minimal.yaml").read_text()
    path = tmp_path / "billing-2026.yaml"
    path.write_text(source)
    assert load_plan(path, env={}).name == "billing-2026"
    assert load_plan(PLANS / "valid" / "nested_compound.yaml", env=ENV).name == "shop-orders"


def test_expansion_with_defaults_and_escape() -> None:
    plan = load_plan(PLANS / "valid" / "minimal.yaml", env={"MIGRATOR_TARGET_URL": "mongodb://t:1/"})
    assert plan.source.url.get_secret_value() == "postgresql://postgres@127.0.0.1/app"
    assert plan.target.url.get_secret_value() == "mongodb://t:1/"
    literal = load_plan(PLANS / "valid" / "literal_dollar.yaml", env={})
    assert literal.source.url.get_secret_value().endswith("application_name=${literal}")


def test_empty_variable_counts_as_unset() -> None:
    with pytest.raises(PlanError, match="MIGRATOR_SOURCE_URL is not set"):
        load_plan(PLANS / "valid" / "full.yaml", env={**ENV, "MIGRATOR_SOURCE_URL": ""})


def test_expanded_value_cannot_inject_yaml() -> None:
    text = "version: 1\nsource: {adapter: postgres, url: ${X}}\ntarget: {adapter: mongodb, url: 'mongodb://m/', database: d}\n"
    text += "collections: [{name: t, from: t, key: id}]\n"
    plan = parse_plan(text, env={"X": "postgresql://h/a},name:hacked,z:{"})
    assert plan.source.url.get_secret_value() == "postgresql://h/a},name:hacked,z:{"
    assert plan.name == "plan"


def test_password_never_in_repr_or_errors() -> None:
    plan = load_plan(PLANS / "valid" / "full.yaml", env=ENV)
    assert "s3cret-pw" not in repr(plan)
    assert "s3cret-pw" not in plan.model_dump_json()
    bad = (PLANS / "valid" / "full.yaml").read_text().replace("database: app", "database: 'a/b'")
    with pytest.raises(PlanError) as info:
        parse_plan(bad, env=ENV)
    assert "s3cret-pw" not in str(info.value)
    assert "target.database" in str(info.value)


def test_embed_properties() -> None:
    plan = load_plan(PLANS / "valid" / "nested_compound.yaml", env=ENV)
    customers = plan.collections[0]
    assert customers.table == "public.customers"
    orders = customers.embed[1]
    assert orders.order_columns == ("placed_at", "id")
    assert orders.embed[0].key_columns == ("order_id", "line_no")
    assert customers.embed[0].key_columns == ()
    assert plan.collections[1].key_columns == ("warehouse_id", "sku")
    assert plan.phases.snapshot.parallel == 2


def test_json_schema_is_strict_and_names_aliases() -> None:
    schema = plan_json_schema()
    assert schema["additionalProperties"] is False
    assert schema["else"]["required"] == ["collections"]
    assert schema["then"]["required"] == ["tables"]
    embed = schema["$defs"]["Embed"]
    assert {"as", "from", "on"} <= set(embed["properties"])
    assert embed["additionalProperties"] is False


def test_multiple_problems_reported_together() -> None:
    text = (PLANS / "valid" / "full.yaml").read_text()
    text = text.replace("many: true", "many: true\n        colour: red").replace("parallel: 2", "parallel: 0")
    with pytest.raises(PlanError) as info:
        parse_plan(text, file="x.yaml", env=ENV)
    assert len(info.value.problems) == 2
    assert {p.key_path for p in info.value.problems} == {
        "collections[0].embed[0].colour",
        "phases.snapshot.parallel",
    }


# -- fuzzing: whatever the input, the loader answers with a Plan or a PlanError -------------------


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=400))
def test_fuzz_arbitrary_text(text: str) -> None:
    try:
        parse_plan(text, env=ENV)
    except PlanError as exc:
        assert exc.problems
        assert all(p.file == "<plan>" for p in exc.problems)


_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 5),
    st.text(max_size=12),
    st.sampled_from(["${X}", "${Y:-d}", "id"]),
)
_keys = st.sampled_from(
    [
        "version",
        "source",
        "target",
        "collections",
        "name",
        "from",
        "key",
        "embed",
        "as",
        "on",
        "many",
        "url",
        "adapter",
        "database",
        "fields",
        "exclude",
        "order_by",
        "phases",
        "snapshot",
        "parallel",
        "zzz",
    ]
)
_trees = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_keys, inner, max_size=5),
    max_leaves=25,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(_keys, _trees, max_size=7))
def test_fuzz_structured_yaml(tree: dict[str, object]) -> None:
    import io

    buffer = io.StringIO()
    YAML(typ="safe").dump(tree, buffer)
    try:
        parse_plan(buffer.getvalue(), env={"X": "x"})
    except PlanError as exc:
        assert exc.problems
        for problem in exc.problems:
            assert problem.message
            assert "\ue000" not in problem.message


# -- hostile input: bounded work, every refusal located ---------------------------------------------


def _alias_bomb(levels: int) -> str:
    """The "billion laughs": each level names the previous one 9 times, so that the expanded
    tree holds 9**levels strings while the file stays a few hundred bytes."""
    lines = ["version: 1", 'l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, levels + 1):
        lines.append(f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]")
    return "\n".join(lines) + "\n"


def test_alias_bomb_is_refused_with_its_line(tmp_path: Path) -> None:
    # 9**9 = 387 million nodes once expanded: without a bound, expansion alone runs for minutes
    # and hundreds of MB (the fault campaign: 95 s, 312 MB). With one, the refusal names the
    # file and the line where the budget ran out.
    path = tmp_path / "bomb.yaml"
    path.write_text(_alias_bomb(9))
    with pytest.raises(PlanError) as info:
        load_plan(path, env=ENV)
    (problem,) = info.value.problems
    assert problem.file == str(path)
    # l_i expands to 9**(i+1) strings: the budget runs out inside l5, whose key is on line 7.
    assert (problem.line, problem.column) == (7, 1), problem
    assert "too large" in problem.message and "alias" in problem.message


def test_plan_file_too_large_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    path.write_text("version: 1\n" + "# padding\n" * 200_000)
    with pytest.raises(PlanError, match="too large"):
        load_plan(path, env=ENV)


def test_nul_byte_is_located(tmp_path: Path) -> None:
    path = tmp_path / "nul.yaml"
    path.write_bytes(b"version: 1\nsource:\n  adapter: post\x00gres\n")
    with pytest.raises(PlanError) as info:
        load_plan(path, env=ENV)
    (problem,) = info.value.problems
    assert (problem.file, problem.line, problem.column) == (str(path), 3, 16), problem
    assert "U+0000" in problem.message


def test_control_character_is_located() -> None:
    with pytest.raises(PlanError) as info:
        parse_plan("version: 1\nname: a\x07b\n", env=ENV)
    (problem,) = info.value.problems
    assert (problem.line, problem.column) == (2, 8), problem
    assert "U+0007" in problem.message


def test_invalid_utf8_is_located(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("version: 1\n# café\nsource:\n  adapter: pöstgres\n".encode("latin-1"))
    with pytest.raises(PlanError) as info:
        load_plan(path, env=ENV)
    (problem,) = info.value.problems
    # The first bad byte: 0xe9 of "café" on line 2, column 6 (counted in characters).
    assert (problem.file, problem.line, problem.column) == (str(path), 2, 6), problem
    assert "UTF-8" in problem.message and "0xe9" in problem.message


def test_join_is_on_under_another_name() -> None:
    # The engine and the digest of a run's mapping see one key, whichever spelling the file used.
    text = (PLANS / "valid" / "full.yaml").read_text()
    assert "on: {" in text
    spelt_on = parse_plan(text, env=ENV)
    spelt_join = parse_plan(text.replace("on: {", "join: {"), env=ENV)
    assert spelt_join.collections[0].embed[0].on == spelt_on.collections[0].embed[0].on != {}
    assert spelt_join.model_dump(by_alias=True) == spelt_on.model_dump(by_alias=True)
    assert "join" not in str(spelt_join.model_dump(by_alias=True))
