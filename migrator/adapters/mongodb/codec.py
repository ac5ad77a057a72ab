"""Documents -> BSON bytes for MongoDB, with the document codec (adapters/documents.py) that the
mapping's comparison shares; one encoding for snapshot and CDC, and MongoDB's size limit."""

from __future__ import annotations

from typing import Any

import bson
from bson.errors import InvalidDocument

from migrator.adapters.documents import CODEC
from migrator.errors import TerminalError

__all__ = ["CODEC", "MAX_BSON_BYTES", "encode_document"]

MAX_BSON_BYTES = 16 * 1024 * 1024


def encode_document(document: dict[str, Any], collection: str) -> bytes:
    """BSON bytes of a document; an unencodable value stops with the document's key named."""
    try:
        return bson.encode(document, codec_options=CODEC)
    except (InvalidDocument, OverflowError, ValueError, ArithmeticError) as exc:
        raise TerminalError(
            f"document {document.get('_id')!r} of {collection} cannot be encoded: {exc}",
            hint="exclude the column, or fix the value at the source",
        ) from None
