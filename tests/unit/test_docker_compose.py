"""docker/compose.yaml parses, its servers bind to localhost only, and its MySQL service is a binlog
source as CDC needs one (Docker itself is not available where the suite runs: the file is checked
as data)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from tests.support.mariadb import MYSQL_URL_ENV

ROOT = Path(__file__).parents[2]


def _compose() -> dict[str, Any]:
    loaded = YAML(typ="safe").load((ROOT / "docker" / "compose.yaml").read_text())
    assert isinstance(loaded, dict)
    return loaded


def test_every_service_binds_to_localhost_and_has_a_health_check() -> None:
    services = _compose()["services"]
    assert set(services) == {"postgres", "mongo", "mysql"}
    for name, service in services.items():
        assert service["ports"], name
        assert all(str(port).startswith("127.0.0.1:") for port in service["ports"]), name
        assert service["healthcheck"]["test"], name


def test_the_mysql_service_is_a_binlog_source() -> None:
    mysql = _compose()["services"]["mysql"]
    assert mysql["image"] == "mysql:8.0"
    assert mysql["ports"] == ["127.0.0.1:53306:3306"]
    flags = dict(arg.removeprefix("--").split("=", 1) for arg in mysql["command"][1:] if "=" in arg)
    # Option names as mysqld takes them: dashes and underscores are the same option.
    settings = {name.replace("-", "_"): value for name, value in flags.items()}
    assert settings["binlog_format"] == "ROW"
    assert settings["binlog_row_image"] == "FULL"
    assert settings["binlog_row_metadata"] == "FULL"
    assert settings["gtid_mode"] == "ON"
    assert settings["enforce_gtid_consistency"] == "ON"
    assert settings["log_bin"]
    assert int(settings["server_id"]) > 0
    assert mysql["environment"]["MYSQL_ROOT_PASSWORD"] == "migrator"


def test_the_docs_name_the_variable_the_fixtures_read() -> None:
    url = "mysql://root:migrator@127.0.0.1:53306/"
    for doc in (ROOT / "docker" / "README.md", ROOT / "docs" / "development.md"):
        text = doc.read_text()
        assert MYSQL_URL_ENV in text, doc
        assert url in text, doc
