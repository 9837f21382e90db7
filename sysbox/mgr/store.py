"""The manager's persistent table of containers and their id ranges (sqlite3, WAL, fsync).

A reply is sent only after its transaction commits with synchronous=FULL, so a manager
killed at any instant restarts with every range it ever handed out still recorded: it may
hold a range nobody uses (reconcile releases those), never hand one out twice.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from dataclasses import dataclass, field
from typing import Any

from sysbox.mgr import allocator

SCHEMA = """
CREATE TABLE IF NOT EXISTS containers (
    id            TEXT PRIMARY KEY,
    slot          INTEGER UNIQUE,          -- NULL for a caller-chosen mapping
    uid           INTEGER NOT NULL,
    gid           INTEGER NOT NULL,
    size          INTEGER NOT NULL,
    rootfs        TEXT NOT NULL,
    runtime_root  TEXT,
    special_dirs  TEXT NOT NULL DEFAULT '[]',
    pid           INTEGER,
    pid_start     INTEGER,
    client_pid    INTEGER,
    client_start  INTEGER,
    state         TEXT NOT NULL,
    keep          INTEGER NOT NULL DEFAULT 0,
    created       REAL NOT NULL,
    updated       REAL NOT NULL
);
"""


@dataclass
class Container:
    id: str
    slot: int | None
    uid: int
    gid: int
    size: int
    rootfs: str
    runtime_root: str | None
    special_dirs: list[str] = field(default_factory=list)
    pid: int | None = None
    pid_start: int | None = None
    client_pid: int | None = None
    client_start: int | None = None
    state: str = "registered"
    keep: bool = False
    created: float = 0.0
    updated: float = 0.0

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Container:
        d = dict(row)
        d["special_dirs"] = json.loads(d["special_dirs"])
        d["keep"] = bool(d["keep"])
        return cls(**d)

    def public(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k not in ("client_start", "pid_start")}


class Store:
    def __init__(self, path: str) -> None:
        os.makedirs(os.path.dirname(path) or ".", mode=0o700, exist_ok=True)
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.executescript(SCHEMA)
        os.chmod(path, 0o600)

    def close(self) -> None:
        self.db.close()

    def get(self, cid: str) -> Container | None:
        row = self.db.execute("SELECT * FROM containers WHERE id = ?", (cid,)).fetchone()
        return Container.from_row(row) if row else None

    def all(self) -> list[Container]:
        return [Container.from_row(r) for r in self.db.execute("SELECT * FROM containers ORDER BY created")]

    def allocate(self, pool: allocator.Pool, cid: str, rootfs: str, runtime_root: str | None,
                 kinds: list[str], client: tuple[int | None, int | None],
                 mappings: dict[str, int] | None = None, keep: bool = False) -> Container:
        """Insert a new container with a free range, atomically and durably."""
        now = time.time()
        self.db.execute("BEGIN IMMEDIATE")
        try:
            rows = self.db.execute("SELECT slot, uid, gid, size FROM containers").fetchall()
            custom = [(r["uid"], r["gid"], r["size"]) for r in rows if r["slot"] is None]
            if mappings:
                why = allocator.outside_pool(pool, mappings["uid"], mappings["gid"], mappings["size"])
                if why:
                    raise allocator.OutsidePool(f"linux.uidMappings: {why}")
                taken = [(r["uid"], r["gid"], r["size"]) for r in rows]
                taken += [(*pool.slot_range(r["slot"]), allocator.SLOT) for r in rows if r["slot"] is not None]
                if allocator.custom_conflict(mappings["uid"], mappings["gid"], mappings["size"], taken):
                    raise allocator.Conflict(
                        f"mapping uid {mappings['uid']} gid {mappings['gid']} size {mappings['size']} "
                        "overlaps the range of another container")
                slot, uid, gid, size = None, mappings["uid"], mappings["gid"], mappings["size"]
            else:
                used = {r["slot"] for r in rows if r["slot"] is not None}
                slot = allocator.first_free_slot(pool, used, custom)
                (uid, gid), size = pool.slot_range(slot), allocator.SLOT
            self.db.execute(
                "INSERT INTO containers (id, slot, uid, gid, size, rootfs, runtime_root, special_dirs,"
                " client_pid, client_start, state, keep, created, updated)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'registered', ?, ?, ?)",
                (cid, slot, uid, gid, size, rootfs, runtime_root, json.dumps(kinds), client[0], client[1],
                 int(keep), now, now))
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        c = self.get(cid)
        assert c is not None
        return c

    def reregister(self, cid: str, rootfs: str, runtime_root: str | None, kinds: list[str],
                   client: tuple[int | None, int | None], keep: bool = False) -> None:
        self.db.execute(
            "UPDATE containers SET rootfs = ?, runtime_root = ?, special_dirs = ?, client_pid = ?,"
            " client_start = ?, state = 'registered', keep = ?, pid = NULL, pid_start = NULL,"
            " updated = ? WHERE id = ?",
            (rootfs, runtime_root, json.dumps(kinds), client[0], client[1], int(keep), time.time(), cid))

    def update(self, cid: str, **fields: Any) -> None:
        if not fields:
            return
        cols = ", ".join(f"{k} = ?" for k in fields)
        self.db.execute(f"UPDATE containers SET {cols}, updated = ? WHERE id = ?",
                        (*fields.values(), time.time(), cid))

    def delete(self, cid: str) -> None:
        self.db.execute("DELETE FROM containers WHERE id = ?", (cid,))
