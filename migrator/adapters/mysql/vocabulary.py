"""MySQL/MariaDB's words for change capture (adapters/vocabulary.py). A binlog keeps no state
for its readers and logs every table: a run's "slot" is its row in `_migrator_slots` (a binlog
stream's saved position), there is no publication, and what capture creates on the source is the
markers table and the slots table (capture.py)."""

from __future__ import annotations

from migrator.adapters.base import SourceVocabulary

VOCABULARY = SourceVocabulary(
    database="MySQL/MariaDB",
    change_log="binlog",
    stream="binlog stream",
    publication=None,
    capture_objects="tables `_migrator_markers` and `_migrator_slots`",
    create_capture="create the tables `_migrator_markers` and `_migrator_slots` (unless they exist)",
    create_stream=(
        "record binlog stream {stream} in `_migrator_slots` at the binlog position of a consistent snapshot"
    ),
    read_how="a binlog replication connection (as a replica reads it)",
    poll_how="a binlog replication connection (a binlog is always streamed: poll mode reads it the same way)",
    acknowledge=(
        "record the applied position in binlog stream {stream} (its row in `_migrator_slots`), where a "
        "resumed run starts"
    ),
    marker="a row written to `_migrator_markers`",
    statistics="MySQL's statistics (`information_schema.TABLES.TABLE_ROWS`)",
    reverse_tag="as origin {origin}: each transaction's first write is its checkpoint row in `_migrator_reverse`",
    reverse_state="reverse sync's checkpoint row in `_migrator_reverse`",
    drop_stream_sql="DELETE FROM `_migrator_slots` WHERE name = '{stream}';",
    drop_capture_sql="DROP TABLE `_migrator_markers`, `_migrator_slots`;",
)
