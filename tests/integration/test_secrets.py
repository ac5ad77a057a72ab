"""A password in a connection string never reaches a person or a file, however the string is written.

The fault campaign of issue 17 found two leaks: a malformed source URL (an unencoded '@' or '/'
in the password, a missing '@host' or scheme) put the password where a user, host, port or
database belongs, and drivers quoted those parts in their errors; and a libpq key=value source
string (`host=... password=...`) was printed verbatim in the runbook. Here every command a user
types (`plan`, `run --dry-run`, `runbook`, `runbook --offline -o`, `status`, and a real `run`
with `--log-format json`) runs as a subprocess against real servers, with many forms of the
source and target strings holding a known secret, and the secret (and each piece of it a broken
string may have cut it into) must appear in no output and no file the commands wrote.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner

from migrator.cli.main import cli
from tests.support.cli_process import migrator_script

SECRET = "Zq7-S3cret-Pw9x"
# What a broken string may cut the secret into (an unencoded '@', '/', '#', '?' or ':' in it).
HEAD, TAIL = "Zq7-S3cret", "Pw9x-tail"
PIECES = (SECRET, HEAD, TAIL, f"{HEAD}@{TAIL}", f"{HEAD}/{TAIL}", f"{HEAD}#{TAIL}")
PLAN = """\
version: 1
source: {{adapter: postgres, url: "${{SRC}}"}}
target: {{adapter: mongodb, url: "${{TGT}}", database: {database}}}
collections:
  - {{name: items, from: public.items, key: id}}
"""


def _pg_parts(url: str) -> tuple[str, int, str]:
    info = psycopg.conninfo.conninfo_to_dict(url)
    return str(info.get("host") or "127.0.0.1"), int(info.get("port") or 5432), str(info["dbname"])


def _malformed_sources(host: str, port: int, db: str) -> list[str]:
    where = f"{host}:{port}/{db}"
    return [
        f"postgresql://app:{SECRET}/{db}",  # no @host: the password is taken for a port
        f"postgresql://app:{SECRET}:{where}",  # ':' where '@' belongs
        f"app:{SECRET}@{where}",  # no scheme
        f"postgresql:/app:{SECRET}@{where}",  # a broken scheme
        f"postgresql://app:{HEAD}@{TAIL}@{where}",  # an unencoded '@' in the password
        f"postgresql://app:{HEAD}/{TAIL}@{where}",  # an unencoded '/': the rest lands in the database
        f"postgresql://app:{HEAD}#{TAIL}@{where}",  # an unencoded '#'
        f"postgresql://app:{HEAD}?{TAIL}@{where}",  # an unencoded '?'
        f"postgresql://app:{HEAD}%{TAIL}@{where}",  # a '%' that is no escape
        f"postgresql://app:{SECRET}@{host}:port/{db}",  # a port that is no number
        f"postgresql://app:{SECRET}@{host}:{port}/{db}?bogus={SECRET}",  # a parameter libpq refuses
        f"postgresql://{SECRET}@@{where}",  # the password where the user belongs, with a stray '@'
        f"postgresql://app:{SECRET} @{where}",  # a space
        f"host={host} port={port} user=app password={SECRET} dbname={db} junk",  # a word that is no pair
        f"host={host} port={port} user=app password='{SECRET} dbname={db}",  # an unclosed quote
        f"host={host} port={port} user=app passwrd={SECRET} dbname={db}",  # an unknown key
        f"host={host} port=x{SECRET} user=app dbname={db}",  # a port that is no number
    ]


def _wellformed_sources(host: str, port: int, db: str) -> list[str]:
    # The test server trusts local connections, so these connect whatever the password.
    return [
        f"host={host} port={port} user=postgres password={SECRET} dbname={db}",
        f"host={host} port={port} user=postgres password='{SECRET}' dbname={db} sslmode=disable",
        f"postgresql://postgres:{SECRET}@{host}:{port}/{db}",
        f"postgresql://postgres@{host}:{port}/{db}?password={SECRET}",
    ]


def _malformed_targets(mongo: str) -> list[str]:
    hostport = mongo.split("://", 1)[1].split("/", 1)[0]
    return [
        f"mongodb://app:{SECRET}/?directConnection=true",  # no @host
        f"mongodb://app:{HEAD}@{TAIL}@{hostport}/?directConnection=true",
        f"mongodb://app:{HEAD}:{TAIL}@{hostport}/?directConnection=true",  # ':' must be encoded
        f"app:{SECRET}@{hostport}/?directConnection=true",  # no scheme
        f"mongodb://app:{SECRET}@{hostport}?directConnection=true",  # no '/' before the options
    ]


def _run(args: list[str], env: dict[str, str], cwd: Path) -> _Ran:
    done = subprocess.run(
        [migrator_script(), *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    return _Ran(args, done.returncode, done.stdout, done.stderr)


class _Ran:
    """One command's outcome, from a subprocess or from click's runner in this process."""

    def __init__(self, args: list[str], code: int, stdout: str, stderr: str) -> None:
        self.args, self.returncode, self.stdout, self.stderr = args, code, stdout, stderr


def _in_process(args: list[str], env: dict[str, str]) -> _Ran:
    # The malformed forms never reach a driver (refused at load), so the command's own output
    # is all there is: click's runner gives it without a Python start-up per command.
    result = CliRunner().invoke(cli, args, env=env, catch_exceptions=False)
    return _Ran(args, result.exit_code, result.stdout, result.stderr)


def _assert_nowhere(results: list[_Ran], directory: Path, form: str) -> None:
    for result in results:
        for stream in (result.stdout, result.stderr):
            for piece in PIECES:
                assert piece not in stream, f"{piece!r} shown by {result.args} for {form!r}:\n{stream}"
        assert "Traceback" not in result.stderr, result.stderr
    for path in directory.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            for piece in PIECES:
                assert piece.encode() not in data, f"{piece!r} written to {path} for {form!r}"


@pytest.fixture
def source_db(pg_url: str) -> Iterator[str]:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE items (id int PRIMARY KEY, name text)")
        conn.execute("INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 20) g")
    yield pg_url


def _commands(plan: Path, work: Path, *, every_output: bool = True) -> list[list[str]]:
    """The commands that print or write the source URL's endpoint. Every output form (text and
    JSON) for the first URL form; for the others one of each command, since the output forms
    share their masking and each command costs a process start (the suite's time)."""
    state = str(work / "state.db")
    commands = [
        ["plan", str(plan)],
        ["plan", str(plan), "--json"],
        ["run", "--dry-run", str(plan)],
        ["run", "--dry-run", "--json", str(plan)],
        ["runbook", str(plan)],
        ["runbook", "--offline", "-o", str(work / "runbook.md"), str(plan)],
        ["status", "--state", state, str(plan)],
        ["status", "--json", "--state", state, str(plan)],
    ]
    return commands if every_output else [commands[i] for i in (1, 3, 4, 5, 7)]


def test_malformed_strings_never_show_the_secret(
    source_db: str, mongo_url: str, mongo_db_name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    host, port, db = _pg_parts(source_db)
    forms = [(src, mongo_url) for src in _malformed_sources(host, port, db)]
    forms += [(f"postgresql://postgres@{host}:{port}/{db}", tgt) for tgt in _malformed_targets(mongo_url)]
    for number, (src, tgt) in enumerate(forms):
        work = tmp_path / f"form{number}"
        work.mkdir()
        plan = work / "plan.yaml"
        plan.write_text(PLAN.format(database=mongo_db_name))
        env = {"SRC": src, "TGT": tgt}
        commands = _commands(plan, work)
        # Every command in this process; two of the first form's also as the installed command
        # (the refusal is made at plan load, before any command's own code runs).
        results = [_in_process(args, env) for args in commands]
        if number == 0:
            results += [_run(args, {**os.environ, **env}, work) for args in commands[::4]]
        _assert_nowhere(results, work, f"{src} | {tgt}")
        for result in results:
            # Refused as an invalid plan, located, before any database is contacted.
            assert result.returncode == 2, (src, tgt, result.args, result.stdout, result.stderr)
            assert "plan.yaml:2" in result.stdout + result.stderr or "plan.yaml:3" in (
                result.stdout + result.stderr
            )


def test_wellformed_strings_are_masked_everywhere(
    source_db: str, mongo_url: str, mongo_db_name: str, tmp_path: Path
) -> None:
    host, port, db = _pg_parts(source_db)
    for number, src in enumerate(_wellformed_sources(host, port, db)):
        work = tmp_path / f"form{number}"
        work.mkdir()
        plan = work / "plan.yaml"
        plan.write_text(PLAN.format(database=mongo_db_name))  # dropped by its fixture
        env = {**os.environ, "SRC": src, "TGT": mongo_url}
        commands = _commands(plan, work, every_output=number == 0)
        # Every command in this process, without a Python start-up each (the suite's time): the
        # forms differ only in how the URL is written, which the same code masks. What only a
        # process shows (its logs, what the interpreter prints at exit) is checked on the first
        # form: a dry run that connects to both servers, and below a real run, status and rollback.
        results = [_in_process(args, {"SRC": src, "TGT": mongo_url}) for args in commands]
        if number == 0:
            results.append(_run(["run", "--dry-run", "--json", str(plan)], env, work))
            assert results[-1].returncode == 0, results[-1].stderr
        runbook = (work / "runbook.md").read_text()
        assert "password=***" in runbook or ":***@" in runbook, runbook
        online = results[commands.index(["runbook", str(plan)])]
        assert online.returncode == 0, online.stderr
        assert host in online.stdout and str(port) in online.stdout  # the endpoint stays visible
        if number == 0:
            # A real run writes a state file, structured logs and the target's records.
            state = str(work / "state.db")
            run = _run(
                ["run", "--until", "snapshot", "--log-format", "json", "--state", state, str(plan)],
                env,
                work,
            )
            assert run.returncode == 0, run.stderr
            results += [run, _run(["status", "--json", "--state", state, str(plan)], env, work)]
            results.append(_run(["rollback", "--yes", "--state", state, str(plan)], env, work))
            assert results[-1].returncode == 0, results[-1].stderr
        _assert_nowhere(results, work, src)
