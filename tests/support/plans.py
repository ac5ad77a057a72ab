"""Plan texts that tests parse or write without any server: their URLs name port 1, where nothing
listens, so a test that connects by mistake fails at once instead of reaching a real database
(the target's serverSelectionTimeoutMS: pymongo would otherwise wait its 5 s for a server there,
as `migrator status` does when it reads the target live)."""

from __future__ import annotations

# One table, one collection: for tests of what the plan settings do, not of a mapping.
OFFLINE_PLAN = """\
version: 1
name: shop
source: {adapter: postgres, url: 'postgresql://app:pw@127.0.0.1:1/shop'}
target: {adapter: mongodb, url: 'mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=200', database: app}
collections:
  - {name: users, from: users, key: id}
"""
