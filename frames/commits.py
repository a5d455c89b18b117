"""Commits to a folder that several writers may save into at once: the last commit wins whole, nothing in flight is lost.

Saved frames and saved models are folders of data files and one pointer file
(``_framelab_manifest.json``, ``model.json``) that lists them. Two saves to
one folder at once (a retried job beside the original, two notebooks) must
leave it loadable as one of the two, whole. framelab uses a small form of the
optimistic commit Delta Lake and Iceberg use, not a lock: object stores have
no lock that S3 and local disk both honour, and a lock held by a process that
died would block every later save.

1. A save writes its data files under names no other save uses (its own save
   id, or the content's sha256), so it never overwrites a file a committed
   version lists, and never another writer's.
2. It commits by one atomic replace of the pointer (a rename on local disk,
   one PUT on an object store). Before it the folder is the old version,
   after it the new one; of two commits, the last wins whole.
3. After its commit it reads the pointer again and removes (:func:`collect`)
   only files it can prove are garbage: files of a version that was committed
   and is no longer current (the version it read before committing, and its
   own, when another commit came after it), minus every file the current
   pointer lists. A file another save is still writing is listed by no
   committed version, so no writer ever removes it.
4. Files of a save that died before its commit are listed by no version; a
   later save removes them once they are :data:`LEFTOVER_AGE_S` old (until
   then they may be another writer's files in flight).

A reader that read the pointer just before a commit may find a part removed
under it; it reads the pointer again and retries once (a whole new version).

Example:
    >>> import fsspec
    >>> from framelab.frames import commits
    >>> fs = fsspec.filesystem("memory")
    >>> fs.pipe({"/c/old.bin": b"1", "/c/new.bin": b"2", "/c/inflight.bin": b"3"})
    >>> commits.collect(fs, "/c", current={"new.bin"}, replaced=["old.bin"], is_ours=lambda n: n.endswith(".bin"))
    >>> sorted(p.rsplit("/", 1)[-1] for p in fs.ls("/c", detail=False))   # another save's file stays
    ['inflight.bin', 'new.bin']
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Callable, Collection, Iterable
from contextlib import suppress

import fsspec

# How old a file no version lists must be before a save removes it as a crashed save's leftover: a
# save in flight keeps its files unlisted until its commit, and no save takes anywhere near a day.
LEFTOVER_AGE_S = 24 * 3600


def collect(
    fs: fsspec.AbstractFileSystem,
    root: str,
    current: Collection[str],
    replaced: Iterable[str],
    is_ours: Callable[[str], bool],
) -> None:
    """Remove the files of committed versions that the current pointer no longer lists, and old leftovers.

    ``current``: the names the pointer lists now (read after the commit).
    ``replaced``: names that committed versions listed. ``is_ours``: whether a
    name is one a save writes (only those are ever swept as leftovers).

    Example:
        >>> import fsspec
        >>> from framelab.frames import commits
        >>> fs = fsspec.filesystem("memory")
        >>> fs.pipe({"/g/a.bin": b"1", "/g/b.bin": b"2"})
        >>> commits.collect(fs, "/g", current={"b.bin"}, replaced=["a.bin", "b.bin"], is_ours=lambda n: False)
        >>> [p.rsplit("/", 1)[-1] for p in fs.ls("/g", detail=False)]
        ['b.bin']
    """
    current = set(current)
    garbage = {name for name in replaced if name not in current}
    try:
        entries = fs.ls(root, detail=True)
    except (FileNotFoundError, NotADirectoryError):
        return
    now = time.time()
    for info in entries:
        name = str(info["name"]).rstrip("/").rsplit("/", 1)[-1]
        if name in current or info.get("type") == "directory":
            continue
        if name in garbage or (is_ours(name) and now - modified_at(info, now) >= LEFTOVER_AGE_S):
            with suppress(OSError, FileNotFoundError):
                fs.rm_file(f"{root.rstrip('/')}/{name}")


def modified_at(info: dict, default: float) -> float:
    """A listing entry's modification time in seconds since the epoch (``default`` when the store gives none).

    Example:
        >>> import datetime
        >>> from framelab.frames.commits import modified_at
        >>> modified_at({"mtime": 5.0}, 0.0), modified_at({}, 1.0)
        (5.0, 1.0)
        >>> modified_at({"LastModified": datetime.datetime(1970, 1, 1, 0, 1, tzinfo=datetime.timezone.utc)}, 0.0)
        60.0
    """
    for key in ("mtime", "LastModified", "last_modified", "created"):
        value = info.get(key)
        if isinstance(value, datetime.datetime):
            if value.tzinfo is None:
                value = value.replace(tzinfo=datetime.timezone.utc)
            return value.timestamp()
        if isinstance(value, (int, float)):
            return float(value)
    return default
