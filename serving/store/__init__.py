"""The service database: one engine and its tables for every durable feature.

`open_store(data_dir, url)` gives the `Store` (SQLite file `qunguard.db` in the data directory,
or the PostgreSQL database at `url`), its tables created. Features keep their tables on
`serving.store.tables.metadata` and their queries in a module here.
"""

from serving.store.db import Store, open_store

__all__ = ["Store", "open_store"]
