"""PostgreSQL's words for change capture (adapters/vocabulary.py): a logical replication slot
that retains WAL, and the publication that selects the tables it sends."""

from __future__ import annotations

from migrator.adapters.base import SourceVocabulary

VOCABULARY = SourceVocabulary(
    database="PostgreSQL",
    change_log="WAL",
    stream="replication slot",
    publication="publication",
    capture_objects="publication {publication}",
    create_capture="create publication {publication} FOR TABLE {tables} (unless it exists)",
    create_stream="create logical replication slot {stream} (pgoutput) exporting a snapshot",
    read_how="a replication connection (START_REPLICATION)",
    poll_how="SQL polling (pg_logical_slot_peek_binary_changes, {changes:,} changes a poll)",
    acknowledge="acknowledge the applied position to replication slot {stream}, so the source frees WAL",
    marker="pg_logical_emit_message",
    statistics="PostgreSQL's statistics (`pg_class.reltuples`)",
    reverse_tag="under replication origin {origin}",
    reverse_state="reverse sync's checkpoint and replication origin",
    drop_stream_sql="SELECT pg_drop_replication_slot('{stream}');",
    drop_capture_sql="DROP PUBLICATION {publication};",
)
