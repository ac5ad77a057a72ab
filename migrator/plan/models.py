"""Plan format v1: the contract between users, tests and the engine.

Every model forbids unknown keys, so a typo is an error and never a silently
ignored setting. Semantic checks that need only the plan itself live here;
checks that need the source schema (columns exist, types convert) live in preflight.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from migrator.connstr import (
    MYSQL_SCHEMES,
    POSTGRES_SCHEMES,
    MalformedConnection,
    parse_mongodb,
    parse_mysql,
    parse_postgres,
)
from migrator.plan.units import Bytes, Seconds

# Slot and publication names derive from the plan name, and PostgreSQL identifiers
# are limited to 63 bytes; keep plan names to a portable, file-name-safe alphabet.
PLAN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,47}$")
# What `from:` takes; TABLE_NAME is public for `migrator init`, which leaves out what it cannot name.
TABLE_NAME = _TABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*(\.[A-Za-z_][A-Za-z0-9_$]*)?$")
_FIELD = re.compile(r"^[^$.\x00][^.\x00]*$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


Columns = Annotated[list[str], Field(min_length=1)]
# A field's target type where it differs from its column's (`types:`). Issue 16 adds the casts of
# columns written to a PostgreSQL target under the same name.
Cast = Literal["bool"]


def _as_columns(value: str | list[str]) -> tuple[str, ...]:
    return (value,) if isinstance(value, str) else tuple(value)


def _check_table(value: str) -> str:
    if not _TABLE.match(value):
        raise ValueError(f"'{value}' is not a table name; write schema.table or table (unquoted identifiers)")
    return value


def _check_fields(value: dict[str, str] | None) -> dict[str, str] | None:
    if value is None:
        return None
    if not value:
        raise ValueError("'fields' is empty; leave it out to take every column")
    for name in value:
        _check_field_name(name)
    return value


def _check_field_name(value: str) -> str:
    if not _FIELD.match(value):
        raise ValueError(
            f"'{value}' is not a usable field name: it must not be empty, start with '$' or hold '.'"
        )
    if value == "_id":
        raise ValueError("'_id' is reserved: it holds the document key given by 'key'")
    return value


# `migrator runbook --offline` stands an unset ${VAR} for itself: no URL to check.
_UNSET = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*\}\Z")


def _strict(value: SecretStr, parse: Callable[[str], object]) -> SecretStr:
    """Refuse a malformed connection string at load time, with a message that quotes none of it
    (migrator/connstr.py): every command then stops before anything shows or records it."""
    text = value.get_secret_value()
    if text.strip() and not _UNSET.match(text):
        try:
            parse(text)
        except MalformedConnection as exc:
            raise ValueError(str(exc)) from None
    return value


class Endpoint(_Strict):
    # A SecretStr keeps the password out of repr(), logs and exceptions.
    url: SecretStr = Field(
        description="Connection URL. Use ${VAR} so that the password stays out of the file."
    )

    @field_validator("url")
    @classmethod
    def _not_empty(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().strip():
            raise ValueError("the URL is empty (is the environment variable set?)")
        return value


class Source(Endpoint):
    adapter: Literal["postgres", "mysql"] = Field(
        description="Source database kind: postgres, or mysql (MySQL 8 and MariaDB 10.5+)."
    )
    zero_dates: Literal["refuse", "null"] = Field(
        default="refuse",
        description="mysql only: zero dates ('0000-00-00', or a zero month or day) in date, datetime and "
        'timestamp columns. refuse: `plan` fails naming each column that holds one. "null" (quoted): they '
        "become null on the target (snapshot and change capture alike); reverse sync cannot restore one: "
        "it keeps a zero date a row still holds where the document's field is null, and writes NULL elsewhere.",
    )

    @field_validator("zero_dates", mode="before")
    @classmethod
    def _quoted_null(cls, value: object) -> object:
        if value is None:
            # YAML reads a bare `null` as no value: say so rather than take it for the default.
            raise ValueError('write zero_dates: "null" in quotes (YAML reads a bare null as no value)')
        return value

    @field_validator("zero_dates")
    @classmethod
    def _mysql_only(cls, value: str, info: ValidationInfo) -> str:
        # Validated only where the plan gives it (defaults are not validated).
        adapter = info.data.get("adapter")
        if adapter is not None and adapter != "mysql":
            raise ValueError(f"'zero_dates' applies to a mysql source only ({adapter} has no zero dates)")
        return value

    @field_validator("url")
    @classmethod
    def _well_formed(cls, value: SecretStr) -> SecretStr:
        # Checked by its own scheme here (so a problem is located at the URL); whether that scheme
        # is the adapter's, below.
        return _strict(value, _source_parser(value.get_secret_value()))

    @property
    def options(self) -> dict[str, Any]:
        """The adapter's own keyword arguments (adapters/registry.py source_for)."""
        return {"zero_dates": self.zero_dates} if self.adapter == "mysql" else {}

    @model_validator(mode="after")
    def _scheme_of_adapter(self) -> Source:
        text = self.url.get_secret_value()
        if text.strip() and not _UNSET.match(text) and _source_parser(text) is not _PARSERS[self.adapter]:
            raise ValueError(
                f"adapter {self.adapter} takes a URL of the form "
                f"{_URL_FORMS[self.adapter]}; this URL is of another database"
            )
        return self


_PARSERS: dict[str, Callable[[str], object]] = {"postgres": parse_postgres, "mysql": parse_mysql}
_URL_FORMS = {
    "postgres": "postgresql://user:password@host:port/database",
    "mysql": "mysql://user:password@host:port/database (or mariadb://)",
}


def _source_parser(text: str) -> Callable[[str], object]:
    scheme = text.strip().partition("://")[0].lower() if "://" in text else ""
    return parse_mysql if scheme in MYSQL_SCHEMES else parse_postgres


class Target(Endpoint):
    adapter: Literal["mongodb", "postgres"] = Field(
        description="Target database kind: mongodb (collections of documents), or postgres (tables)."
    )
    database: str = Field(
        default="",
        max_length=63,
        description="Target database name (mongodb; required there). A postgres target's database is the "
        "one its URL names.",
    )

    @field_validator("url")
    @classmethod
    def _well_formed(cls, value: SecretStr) -> SecretStr:
        return _strict(value, _target_parser(value.get_secret_value()))

    @field_validator("database")
    @classmethod
    def _database_name(cls, value: str) -> str:
        if re.search(r"[/\\. \"$\x00]", value):
            raise ValueError(f"'{value}' is not a valid MongoDB database name (no / \\ . space \" $)")
        return value

    @model_validator(mode="after")
    def _of_adapter(self) -> Target:
        text = self.url.get_secret_value()
        if (
            text.strip()
            and not _UNSET.match(text)
            and _target_parser(text) is not _TARGET_PARSERS[self.adapter]
        ):
            raise ValueError(
                f"adapter {self.adapter} takes a URL of the form {_TARGET_URL_FORMS[self.adapter]}; "
                "this URL is of another database"
            )
        if self.adapter == "mongodb" and not self.database:
            raise ValueError("a mongodb target needs 'database' (the database the collections go to)")
        if self.adapter == "postgres" and self.database:
            raise ValueError("a postgres target takes its database from the URL: remove 'database'")
        return self


_TARGET_PARSERS: dict[str, Callable[[str], object]] = {"mongodb": parse_mongodb, "postgres": parse_postgres}
_TARGET_URL_FORMS = {
    "mongodb": "mongodb://user:password@host:port/?replicaSet=...",
    "postgres": "postgresql://user:password@host:port/database",
}


def _target_parser(text: str) -> Callable[[str], object]:
    scheme = text.strip().partition("://")[0].lower() if "://" in text else ""
    return parse_postgres if scheme in POSTGRES_SCHEMES else parse_mongodb


class _Shape(_Strict):
    """What the embedded and top-level mappings share: which columns become which fields."""

    from_: str = Field(
        alias="from",
        description="Source table: schema.table, or table in schema public (PostgreSQL); database.table (MySQL).",
    )
    fields: dict[str, str] | None = Field(
        default=None,
        description="Target field name -> source column. When given, only these fields are taken. "
        "Default: every column under its own name.",
    )
    exclude: list[str] = Field(default_factory=list, description="Source columns left out.")
    embed: list[Embed] = Field(default_factory=list, description="Child tables embedded in each document.")
    types: dict[str, Cast] = Field(
        default_factory=dict,
        # Left out of a dump while empty: the digest of a run's mapping (operations/run.py
        # plan_digest) stays what runs begun before `types` existed recorded.
        exclude_if=lambda value: not value,
        description="Source column -> the type its field takes on the target, where it is not the column's "
        "own. bool: an integer column holding only 0 and 1 (MySQL's TINYINT(1)) becomes true/false; `plan` "
        "scans it and fails on any other value, and reverse sync writes 1/0 back.",
    )

    @field_validator("from_")
    @classmethod
    def _table(cls, value: str) -> str:
        return _check_table(value)

    @field_validator("fields")
    @classmethod
    def _fields(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        return _check_fields(value)

    @field_validator("types")
    @classmethod
    def _types(cls, value: dict[str, Cast]) -> dict[str, Cast]:
        for column in value:
            if not column:
                raise ValueError("'types' names an empty column")
        return value

    @property
    def table(self) -> str:
        """Fully qualified source table name."""
        return self.from_ if "." in self.from_ else f"public.{self.from_}"

    def _check_common(self, key: tuple[str, ...]) -> None:
        if self.fields is not None and self.exclude:
            taken = set(self.fields.values()) & set(self.exclude)
            if taken:
                raise ValueError(f"column(s) {sorted(taken)} are both in 'fields' and in 'exclude'")
        self._check_types(key)
        names = [e.as_ for e in self.embed]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"embed 'as' name(s) {dupes} used more than once in the same document")
        if self.fields is not None:
            clash = sorted(set(names) & set(self.fields))
            if clash:
                raise ValueError(f"field(s) {clash} are also embed 'as' names")

    def _check_types(self, structural: tuple[str, ...]) -> None:
        """`types` changes the values of fields only: a column that finds a document or an element
        (a key, a link, an order) keeps its values, as changes must find them."""
        links = {parent for e in self.embed for parent in e.on.values()}
        held = sorted(set(self.types) & (set(structural) | links))
        if held:
            raise ValueError(
                f"'types' names column(s) {held} that key, link ('on') or order documents or elements: "
                "their values must stay as the source holds them"
            )
        excluded = sorted(set(self.types) & set(self.exclude))
        if excluded:
            raise ValueError(f"'types' names column(s) {excluded} that 'exclude' leaves out")
        if self.fields is not None:
            unmapped = sorted(set(self.types) - set(self.fields.values()))
            if unmapped:
                raise ValueError(f"'types' names column(s) {unmapped} that 'fields' does not take")


# `join` in the JSON Schema: an object like `on` (left out means not given; null is not a value).
_LINK_SCHEMA = {"type": "object", "additionalProperties": {"type": "string"}, "minProperties": 1}


class Embed(_Shape):
    # `on` or `join`, exactly one: YAML 1.1 parsers (PyYAML, yamllint) read a bare `on` key as the
    # boolean true, so a plan other tools read spells the link `join` (docs/architecture.md,
    # "Plan files"). `join` is folded into `on` once validated: the engine and the digest of a
    # run's mapping see one key whichever was written.
    model_config = ConfigDict(json_schema_extra={"oneOf": [{"required": ["on"]}, {"required": ["join"]}]})

    as_: str = Field(alias="as", description="Field of the parent document that holds the child rows.")
    on: dict[str, str] = Field(
        default_factory=dict,
        min_length=1,
        description="Child column -> parent column. Also spelt `join` (give one of the two).",
    )
    join: Annotated[dict[str, str] | None, WithJsonSchema(_LINK_SCHEMA)] = Field(
        default=None,
        min_length=1,
        exclude=True,
        description="The same as `on`, under a name every YAML parser reads as a string (YAML 1.1 "
        "parsers read a bare `on` as true). Give one of the two.",
    )
    many: bool = Field(
        default=True, description="true: array ([] when none); false: one sub-document or null."
    )
    key: str | Columns | None = Field(
        default=None,
        description="Child key column(s), identifying the element inside its parent. Default: the child "
        "table's primary key.",
    )
    order_by: str | Columns | None = Field(
        default=None, description="Array order (many: true only). Default: the child key ascending."
    )

    @field_validator("as_")
    @classmethod
    def _as_name(cls, value: str) -> str:
        return _check_field_name(value)

    @field_validator("join")
    @classmethod
    def _one_spelling(cls, value: dict[str, str] | None, info: ValidationInfo) -> dict[str, str] | None:
        if value is not None and info.data.get("on"):
            raise ValueError("'join' and 'on' are two spellings of the same link: give one of them")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Embed:
        if self.join is not None:
            object.__setattr__(self, "on", self.join)  # frozen: set once, while validating
        if not self.on:
            raise ValueError("required key 'join' (or 'on') is missing: child column -> parent column")
        if not self.many and self.order_by is not None:
            raise ValueError("'order_by' applies only to 'many: true'")
        self._check_common((*self.key_columns, *self.on, *self.order_columns))
        return self

    @property
    def key_columns(self) -> tuple[str, ...]:
        return () if self.key is None else _as_columns(self.key)

    @property
    def order_columns(self) -> tuple[str, ...]:
        return () if self.order_by is None else _as_columns(self.order_by)


class Collection(_Shape):
    name: str = Field(min_length=1, max_length=120, description="Target collection.")
    key: str | Columns = Field(
        description="Column(s) -> _id. A list gives a compound _id document {a: .., b: ..}. "
        "Key columns are not repeated as fields."
    )

    @field_validator("name")
    @classmethod
    def _collection_name(cls, value: str) -> str:
        if value.startswith("system.") or "$" in value or "\x00" in value:
            raise ValueError(f"'{value}' is not a usable collection name (no 'system.' prefix, no '$')")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Collection:
        excluded_keys = sorted(set(self.key_columns) & set(self.exclude))
        if excluded_keys:
            raise ValueError(f"key column(s) {excluded_keys} cannot be excluded: they form _id")
        self._check_common(self.key_columns)
        return self

    @property
    def key_columns(self) -> tuple[str, ...]:
        return _as_columns(self.key)


class Table(_Strict):
    """A source table copied into a target table of the same columns (a postgres target). The
    engine takes it as a flat collection: one document per row, keyed by the primary key
    (docs/architecture.md, "Tables as collections")."""

    from_: str = Field(
        alias="from",
        description="Source table: schema.table, or table in schema public (PostgreSQL); database.table (MySQL).",
    )
    name: str | None = Field(
        default=None, description="Target table, schema.table. Default: the source table's schema and name."
    )
    fields: dict[str, str] | None = Field(
        default=None,
        description="Target column -> source column, for the columns other than the primary key's. When given, "
        "only these are taken. Default: every column under its own name. Primary key columns are always "
        "taken, under their own names.",
    )
    exclude: list[str] = Field(
        default_factory=list, description="Source columns left out (not the primary key's)."
    )
    types: dict[str, Cast] = Field(
        default_factory=dict,
        exclude_if=lambda value: not value,  # as _Shape.types: a run's plan digest stays as it was
        description="Source column -> its target column's type, where it is not the column's own. bool: an "
        "integer column holding only 0 and 1 (MySQL's TINYINT(1)) becomes a boolean column; `plan` scans it "
        "and fails on any other value.",
    )

    @field_validator("types")
    @classmethod
    def _types(cls, value: dict[str, Cast]) -> dict[str, Cast]:
        if "" in value:
            raise ValueError("'types' names an empty column")
        return value

    @field_validator("from_", "name")
    @classmethod
    def _table(cls, value: str | None) -> str | None:
        return None if value is None else _check_table(value)

    @field_validator("fields")
    @classmethod
    def _fields(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        return _check_fields(value)

    @model_validator(mode="after")
    def _consistent(self) -> Table:
        if self.fields is not None and self.exclude:
            taken = set(self.fields.values()) & set(self.exclude)
            if taken:
                raise ValueError(f"column(s) {sorted(taken)} are both in 'fields' and in 'exclude'")
        excluded = sorted(set(self.types) & set(self.exclude))
        if excluded:
            raise ValueError(f"'types' names column(s) {excluded} that 'exclude' leaves out")
        unmapped = sorted(set(self.types) - set(self.fields.values())) if self.fields is not None else []
        if unmapped:
            raise ValueError(f"'types' names column(s) {unmapped} that 'fields' does not take")
        return self

    @property
    def table(self) -> str:
        """Fully qualified source table name."""
        return self.from_ if "." in self.from_ else f"public.{self.from_}"

    @property
    def target(self) -> str:
        """Fully qualified target table name."""
        name = self.name or self.table
        return name if "." in name else f"public.{name}"

    def as_collection(self) -> Collection:
        """The flat collection the engine moves this table as: keyed by the source table's
        primary key, resolved against the source (mapping/spec.py); no embeds."""
        return Collection.model_construct(
            name=self.target,
            from_=self.from_,
            key=[],
            fields=self.fields,
            exclude=list(self.exclude),
            embed=[],
            types=dict(self.types),
        )


class SnapshotSettings(_Strict):
    parallel: int = Field(
        default=2, ge=1, le=64, description="Copy workers (threads, each with its own connection)."
    )
    chunk_rows: int = Field(
        default=10_000,
        ge=1,
        le=10_000_000,
        description="Top-level rows per key-range chunk (the unit of resume). Left unset, a table "
        "copied undecoded (PostgreSQL to PostgreSQL, binary COPY) takes chunks of ten times the default.",
    )
    on_oversize: Literal["stop", "skip"] = Field(
        default="stop",
        description="A document over MongoDB's 16 MB limit: stop the run naming its key, or skip it and "
        "record it in the event log.",
    )
    stall_timeout: Seconds = Field(
        default=600.0,
        gt=0,
        description="postgres source only: a chunk's binary COPY (PostgreSQL to PostgreSQL, undecoded) that "
        "gets nothing from the source for this long (a hung backend, a network that drops packets without "
        "a reset) is abandoned and the chunk copied again on a new connection (e.g. 10m, 90s).",
    )


class CdcSettings(_Strict):
    """Change capture: replay of every source change after the snapshot."""

    mode: Literal["stream", "poll"] = Field(
        default="stream",
        description="stream: a replication connection (PostgreSQL: START_REPLICATION; MySQL/MariaDB: the "
        "binlog, as a replica reads it). poll (PostgreSQL; a binlog is always streamed): SQL polling with "
        "pg_logical_slot_peek_binary_changes + pg_replication_slot_advance, for sources that allow no "
        "replication connection (slower: each poll re-decodes from the slot's restart point).",
    )
    poll_changes: int = Field(
        default=10_000,
        ge=100,
        le=1_000_000,
        description="poll mode: changes read per poll (large is cheaper).",
    )

    max_lag: Seconds = Field(
        default=5.0,
        gt=0,
        description="`run --until caught-up` stops once the lag is under this (e.g. 1s, 500ms).",
    )
    max_retained_wal: Bytes = Field(
        default=10 * 1024**3,
        gt=0,
        description="Change log (PostgreSQL: WAL; MySQL/MariaDB: binlog) the run's slot may hold back on the "
        "source (e.g. 10GB); past it the run stops rather than fill the source's disk.",
    )
    heartbeat_interval: Seconds = Field(
        default=10.0,
        gt=0,
        description="How often an idle stream emits a heartbeat so the slot keeps advancing.",
    )
    on_truncate: Literal["stop", "apply"] = Field(
        default="stop",
        description="TRUNCATE of a mapped table: stop with an error, or apply it (empty the collection or arrays).",
    )
    batch_changes: int = Field(
        default=2_000,
        ge=1,
        le=100_000,
        description="Target writes per batch at most (several source transactions; one MongoDB transaction). "
        "While the target aborts batches (MongoDB's 60 s transaction lifetime) CDC halves it, and grows it back "
        "once batches go through. Like every phases setting, may change between resumes of a run.",
    )
    apply: bool = Field(
        default=True,
        description="false: dual-write verification, for the window in which the application writes both "
        "databases itself. The stream is followed and checkpointed as usual, but nothing is written to the "
        "target: every source change is checked, verify.dual_write_grace after its commit, against the "
        "document the target holds, and divergences are reported. Makes no sense together with cutover.",
    )


class VerifySettings(_Strict):
    """Verification: source and target compared through the mapping, while changes flow."""

    mode: Literal["full", "sample"] = Field(
        default="full",
        description="full: every document. sample: a deterministic pseudo-random share of the keys "
        "(`sample`), plus as many randomly chosen target documents checked for being extra.",
    )
    sample: float = Field(default=0.05, gt=0, le=1, description="sample mode: the share of keys checked.")
    parallel: int = Field(default=2, ge=1, le=64, description="Key ranges compared at the same time.")
    chunk_rows: int = Field(
        default=10_000, ge=10, le=1_000_000, description="Root rows per key range compared at once."
    )
    rechecks: int = Field(
        default=5,
        ge=2,
        le=50,
        description="Rounds for a key that differs: each reads the source, waits until CDC has applied "
        "that position, reads the target, then reads the source again. A difference counts once two "
        "rounds confirm it on a source that did not change meanwhile.",
    )
    settle_timeout: Seconds = Field(
        default=30.0,
        gt=0,
        description="How long a recheck waits for CDC to apply the position it read the source at; "
        "past it, the key is reported as unsettled (the target is behind), not as a mismatch.",
    )
    tolerance: float = Field(
        default=0.0,
        ge=0,
        le=1,
        description="Share of checked documents allowed to differ for the cutover gate (0: none).",
    )
    dual_write_grace: Seconds = Field(
        default=2.0,
        gt=0,
        description="cdc.apply: false (the application writes both sides): how long after a source "
        "commit the target may take to hold the expected document.",
    )


class Fence(_Strict):
    """How source writes are held while the switch flips."""

    kind: Literal["lock", "command"] = Field(
        default="lock",
        description="lock: hold LOCK TABLE ... IN EXCLUSIVE MODE on the mapped tables (writers wait, readers "
        "go on); on the target side (rollback after cutover), a validator that refuses inserts and updates "
        "on the mapped collections (error 121, retryable by the application). command: run `pause` to stop "
        "the application's writers and `resume` to let them go (MIGRATOR_DIRECTION says which side).",
    )
    pause: list[str] | None = Field(
        default=None, description="command fence: executable and arguments that pause writers."
    )
    resume: list[str] | None = Field(
        default=None, description="command fence: executable and arguments that resume writers."
    )
    lock_timeout: Seconds = Field(
        default=1.0,
        gt=0,
        description="lock fence: how long taking the locks may wait behind running transactions before "
        "this attempt is abandoned (writers queue behind a waiting lock, so keep it short).",
    )

    @model_validator(mode="after")
    def _commands(self) -> Fence:
        if self.kind == "command" and (not self.pause or not self.resume):
            raise ValueError("a command fence needs both 'pause' and 'resume'")
        return self


class Switch(_Strict):
    """What tells applications which side is primary."""

    kind: Literal["file", "command", "postgres", "mongodb"] = Field(
        default="file",
        description="file: write `path` atomically, its content 'source' or 'target'. command: run `run` "
        "with MIGRATOR_PLAN, MIGRATOR_DIRECTION (forward|back) and MIGRATOR_PRIMARY in its environment. "
        "postgres / mongodb: upsert a routing row (table `name`) or document (collection `name`) keyed by "
        "the plan name, with the primary side, on the source / target database.",
    )
    path: str | None = Field(default=None, description="file switch: the routing file.")
    run: list[str] | None = Field(default=None, description="command switch: executable and arguments.")
    name: str = Field(
        default="migrator_routing", description="postgres/mongodb switch: routing table or collection."
    )

    @model_validator(mode="after")
    def _target(self) -> Switch:
        if self.kind == "file" and not self.path:
            raise ValueError("a file switch needs 'path'")
        if self.kind == "command" and not self.run:
            raise ValueError("a command switch needs 'run'")
        return self


class CutoverSettings(_Strict):
    """Cutover: a short, measured write freeze on the source while the switch flips."""

    max_write_freeze: Seconds = Field(
        default=2.0,
        gt=0,
        description="Longest time source writes may be held. Past it the attempt is abandoned, the fence "
        "lifted and the cutover tried again (up to `retries`).",
    )
    retries: int = Field(default=3, ge=0, le=100, description="Further attempts after an abandoned one.")
    retry_pause: Seconds = Field(default=5.0, ge=0, description="Wait between attempts (writers catch up).")
    fence: Fence = Field(default_factory=Fence)
    switch: Switch | None = Field(
        default=None, description="How applications learn the new primary (needed for cutover)."
    )
    reverse_sync: bool = Field(
        default=True,
        description="After the flip, carry the target's changes back to the source so that it stays a "
        "complete fallback (rollback after cutover needs it). false: a one-way cutover.",
    )
    sequence_margin: int = Field(
        default=1000,
        ge=0,
        description="Steps a target's sequences are set past the source's last values at cutover, under "
        "the fence (a PostgreSQL target's serial and identity columns; others have none).",
    )
    postpone_file: str | None = Field(
        default=None,
        description="While this file exists, cutover waits at the gate (gh-ost's postpone flag).",
    )
    on_before_cutover: list[str] | None = Field(
        default=None, description="Command run before the fence (a non-zero exit stops the cutover)."
    )
    on_after_cutover: list[str] | None = Field(
        default=None, description="Command run after the fence is lifted."
    )
    on_rollback: list[str] | None = Field(
        default=None, description="Command run after a rollback flipped the switch back."
    )


class ThrottleSettings(_Strict):
    """Live throttling, in the manner of gh-ost: while any condition holds, snapshot workers stop
    between write batches and CDC stops between batches (keeping its replication connection alive);
    `migrator throttle` pauses, resumes and overrides settings of a running migration. Not a phase:
    it applies to the snapshot and CDC of `migrator run`."""

    file: str | None = Field(
        default=None,
        description="While this file exists, the migration is throttled (gh-ost's throttle flag file). "
        "A relative path is taken from the working directory of `migrator run`.",
    )
    max_active_sessions: int | None = Field(
        default=None,
        ge=1,
        description="Throttle while more client sessions than this are active on the source server "
        "(pg_stat_activity, state 'active'; migrator's own sessions are not counted). Needs "
        "pg_read_all_stats (or superuser) to see other users' sessions. Default: not checked.",
    )
    max_replica_lag: Seconds | None = Field(
        default=None,
        gt=0,
        description="Throttle while a physical replica of the source replays more than this behind "
        "(pg_stat_replication.replay_lag; e.g. 10s). No replicas: never throttles. Default: not checked.",
    )
    check_interval: Seconds = Field(
        default=1.0,
        gt=0,
        le=60,
        description="How often the conditions and `migrator throttle`'s controls are read.",
    )


class Phases(_Strict):
    snapshot: SnapshotSettings = Field(default_factory=SnapshotSettings)
    cdc: CdcSettings = Field(default_factory=CdcSettings)
    verify: VerifySettings = Field(default_factory=VerifySettings)
    cutover: CutoverSettings = Field(default_factory=CutoverSettings)
    throttle: ThrottleSettings = Field(default_factory=ThrottleSettings)


class Plan(_Strict):
    """A migration plan, format version 1."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        populate_by_name=True,
        title="migrator plan, format v1",
        # A mongodb target takes `collections`, a postgres target `tables` (and never the other).
        json_schema_extra={
            "if": {"properties": {"target": {"properties": {"adapter": {"const": "postgres"}}}}},
            "then": {"required": ["tables"], "not": {"required": ["collections"]}},
            "else": {"required": ["collections"], "not": {"required": ["tables"]}},
        },
    )

    version: Literal[1] = Field(description="Plan format version.")
    name: str = Field(
        default="",
        description="Plan name: state file, slot and publication names derive from it. "
        "Default: the file name without extension.",
    )
    source: Source
    target: Target
    collections: list[Collection] = Field(
        default_factory=list, description="Target collections (a mongodb target): at least one."
    )
    tables: list[Table] = Field(
        default_factory=list, description="Target tables (a postgres target): at least one."
    )
    phases: Phases = Field(default_factory=Phases)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if value and not PLAN_NAME.match(value):
            raise ValueError(
                f"'{value}' is not a usable plan name: letters, digits, '_', '.', '-', at most 48, "
                "starting with a letter or digit"
            )
        return value

    @field_validator("collections")
    @classmethod
    def _unique_collections(cls, value: list[Collection], info: ValidationInfo) -> list[Collection]:
        _check_mappings(value, info, "mongodb", "collection name(s)")
        return value

    @field_validator("tables")
    @classmethod
    def _unique_tables(cls, value: list[Table], info: ValidationInfo) -> list[Table]:
        _check_mappings([t.as_collection() for t in value], info, "postgres", "target table(s)")
        return value

    @field_validator("phases")
    @classmethod
    def _postgres_stall_timeout(cls, value: Phases, info: ValidationInfo) -> Phases:
        # Refused only where the plan gives it (a default is not a choice to refuse).
        source = info.data.get("source")
        if (
            "stall_timeout" in value.snapshot.model_fields_set
            and source is not None
            and source.adapter != "postgres"
        ):
            raise ValueError(
                "'snapshot.stall_timeout' applies to a postgres source only (a "
                f"{source.adapter} source's reads time out after their connection's read timeout)"
            )
        return value

    @property
    def source_options(self) -> dict[str, Any]:
        """The source adapter's keyword arguments (adapters/registry.py source_for): the source's
        own (`Source.options`) and, for a postgres source, the snapshot's stall timeout."""
        if self.source.adapter != "postgres":
            return self.source.options
        return {**self.source.options, "read_timeout_s": self.phases.snapshot.stall_timeout}

    @model_validator(mode="after")
    def _mapping(self) -> Plan:
        """A postgres target's tables become the collections the engine moves (a frozen model:
        set once, here, before anyone reads it)."""
        kind = "tables" if self.target.adapter == "postgres" else "collections"
        if self.tables:
            object.__setattr__(self, "collections", [t.as_collection() for t in self.tables])
        if not self.collections:
            raise ValueError(
                f"required key '{kind}' is missing: a {self.target.adapter} target takes '{kind}:'"
            )
        return self


# What each target's plan lists its mappings under.
_LISTS = {"mongodb": "collections", "postgres": "tables"}


def _check_mappings(value: list[Collection], info: ValidationInfo, adapter: str, what: str) -> None:
    """`collections` (a mongodb target) or `tables` (a postgres target, as their collections):
    the list of the plan's target, not empty, each name once, qualified for a MySQL source."""
    target = info.data.get("target")
    if target is not None and target.adapter != adapter:
        raise ValueError(
            f"a {target.adapter} target takes '{_LISTS[target.adapter]}:', not '{_LISTS[adapter]}:'"
        )
    if not value:
        raise ValueError(f"'{_LISTS[adapter]}' is empty: list at least one")
    names = [c.name for c in value]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"{what} {dupes} used more than once")
    source = info.data.get("source")
    if source is not None and source.adapter == "mysql":
        _qualified(value)


def _qualified(collections: list[Collection]) -> None:
    """A MySQL source has no default schema like PostgreSQL's public (a table is database.table,
    and a run may read tables of several databases): every `from` names its database."""
    bare: list[str] = []

    def walk(level: _Shape, where: str) -> None:
        if "." not in level.from_:
            bare.append(f"{where}: from: {level.from_}")
        for i, embed in enumerate(level.embed):
            walk(embed, f"{where}.embed[{i}]")

    for i, collection in enumerate(collections):
        walk(collection, f"collections[{i}]")
    if bare:
        raise ValueError(
            "a MySQL source's tables are named database.table (write e.g. 'from: shop.users'); "
            "unqualified: " + "; ".join(bare)
        )


_Shape.model_rebuild()
Embed.model_rebuild()
Collection.model_rebuild()
Plan.model_rebuild()
