"""Resumable extraction: finished blocks go to Parquet as they come, and a rerun computes only the rest.

``deep_features.extract(frame, checkpoint=url)`` keys every row by its path
and a hash of its image's bytes, drops the rows whose key the checkpoint
already holds, extracts the others, and writes each finished block as one
Parquet part under ``url`` while the job runs. A job that crashed (a node, the
driver, the whole cluster) is resumed by running the same call again: the
result, read back from the checkpoint, has every row exactly once.

Why each part is safe to keep:

- a part is written under a temporary name that readers skip (a leading dot)
  and renamed when complete, so a crash mid-write leaves nothing half-read;
- a part's name is a hash of the keys it holds, so a block that Ray retries
  after its part was written overwrites that part instead of adding rows.

The checkpoint keeps every column but the images themselves (they would copy
the corpus); join the result back to the images on ``path`` if you need them.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from typing import Any

import pyarrow as pa

from framelab.frames import Frame
from framelab.frames.errors import InputError
from framelab.frames.storage import filesystem
from framelab.platform.client import on_cluster
from framelab.toolkits.deep_features.extractor import DeepFeatureExtractor, find_image_column

#: Column of the checkpoint's parts: a hash of the image's encoded bytes (hex BLAKE2b, 128 bits).
KEY_COLUMN = "_framelab_content_hash"
PATH_COLUMN = "path"
_TMP_PREFIX = ".tmp-"
# What the write step gives back: a row count per part written.
_WRITTEN = pa.schema([("rows", pa.int64())])

log = logging.getLogger(__name__)


@on_cluster
def extract_resumable(
    frame: Frame,
    checkpoint: str,
    *,
    image_column: str | None = None,
    checkpoint_storage_options: dict | None = None,
    **extract_args: Any,
) -> Any:
    """``extract`` that writes finished blocks to ``checkpoint`` and skips the rows already there.

    ``extract_args`` are :func:`~framelab.toolkits.deep_features.extract`'s.
    The frame needs a ``path`` column (``read_images`` gives one). Returns the
    checkpoint's rows: every input row once, with the features column and every
    column but the images.

    Example:
        >>> import tempfile
        >>> from framelab.frames import Frame
        >>> from framelab.toolkits import datasets, deep_features
        >>> from framelab.toolkits.deep_features.checkpoint import resume_plan
        >>> photos = Frame.read_images(str(datasets.caltech101_path() / "ewer")).head(6)
        >>> url = tempfile.mkdtemp()
        >>> deep_features.extract(photos.head(4), checkpoint=url).num_rows()   # a run that got 4 rows done
        4
        >>> resume_plan(photos, url)      # the same call on all 6 would compute only 2
        {'done': 4, 'todo': 2}
    """
    image_column = _checked_image_column(frame, image_column)
    fs, root = _filesystem(checkpoint, checkpoint_storage_options)
    _remove_unfinished(fs, root)
    done = written_keys(checkpoint, checkpoint_storage_options)
    if done:
        log.info("resuming from %s: %d row(s) already extracted", checkpoint, len(done))
    # Running the plan writes the parts as blocks finish; only a count per part comes back.
    resumable_plan(frame, checkpoint, done, image_column=image_column,
                   checkpoint_storage_options=checkpoint_storage_options, **extract_args).materialize()
    result = Frame.read_parquet(checkpoint, storage_options=checkpoint_storage_options)
    return result.drop(KEY_COLUMN)


def resumable_plan(
    frame: Frame,
    checkpoint: str,
    done: frozenset[str] = frozenset(),
    *,
    image_column: str | None = None,
    checkpoint_storage_options: dict | None = None,
    **extract_args: Any,
) -> Frame:
    """The frame's plan for a resumable run: skip the ``done`` keys, extract, write each block as a part.

    Nothing runs until a result is asked for; its rows are a count per part written. The skip
    runs block by block right below the extractor's decoding, so the planner makes it part of
    the tasks that feed the model (``explain()`` shows it there).

    Example:
        >>> import tempfile
        >>> from framelab.frames import Frame
        >>> from framelab.toolkits import datasets
        >>> photos = Frame.read_images(str(datasets.caltech101_path() / "ewer")).repartition(2)
        >>> steps = resumable_plan(photos, tempfile.mkdtemp(), device="cpu").explain()
        >>> print(steps.splitlines()[0])
        Map  @cluster  write checkpoint parts
        >>> "fed by [skip rows the checkpoint holds" in steps
        True
    """
    image_column = _checked_image_column(frame, image_column)
    fs, root = _filesystem(checkpoint, checkpoint_storage_options)
    # Schemas declared, so nothing runs to find them out.
    todo = frame.map_batches(_SkipDone(image_column, done), schema=frame.schema,
                             label="skip rows the checkpoint holds")
    output_column = extract_args.pop("output_column", "deep_features")
    extractor = DeepFeatureExtractor(extract_args.pop("model", "mobilenet_v2"), **extract_args)
    featured = extractor.transform(todo, image_column=image_column, output_column=output_column)
    return featured.map_batches(_WritePart(fs, root, image_column), schema=_WRITTEN, label="write checkpoint parts")


def resume_plan(frame: Frame, checkpoint: str, *, image_column: str | None = None,
                checkpoint_storage_options: dict | None = None) -> dict[str, int]:
    """How many of the frame's rows the checkpoint holds (``done``) and how many a run would compute.

    Example:
        >>> import tempfile
        >>> from framelab.frames import Frame
        >>> from framelab.toolkits import datasets
        >>> photos = Frame.read_images(str(datasets.caltech101_path() / "ewer")).head(3)
        >>> resume_plan(photos, tempfile.mkdtemp())
        {'done': 0, 'todo': 3}
    """
    image_column = find_image_column(frame.schema, image_column)
    done = written_keys(checkpoint, checkpoint_storage_options)
    schema = pa.schema([(PATH_COLUMN, pa.string()), (KEY_COLUMN, pa.string())])
    keys = frame.map_batches(_Keys(image_column), preserves_rows=True, schema=schema,
                             label="checkpoint keys").to_arrow()
    found = sum(1 for k in _keys_of(keys) if k in done)
    return {"done": found, "todo": keys.num_rows - found}


def written_keys(checkpoint: str, storage_options: dict | None = None) -> frozenset[str]:
    """The row keys (path and content hash) the checkpoint's finished parts hold.

    Example:
        >>> import tempfile
        >>> from framelab.toolkits.deep_features.checkpoint import written_keys
        >>> written_keys(tempfile.mkdtemp())
        frozenset()
    """
    import pyarrow.parquet as pq

    fs, root = _filesystem(checkpoint, storage_options)
    parts = [p for p in fs.find(root) if p.endswith(".parquet") and not _is_hidden(p)]
    keys: set[str] = set()
    for part in parts:
        with fs.open(part, "rb") as f:
            keys.update(_keys_of(pq.read_table(f, columns=[PATH_COLUMN, KEY_COLUMN])))
    return frozenset(keys)


def _checked_image_column(frame: Frame, image_column: str | None) -> str:
    """The image column the keys hash, once the frame is known to have the paths they also need."""
    image_column = find_image_column(frame.schema, image_column)
    if PATH_COLUMN not in frame.columns:
        raise InputError(
            f"checkpoint= keys rows by path and image content; the frame has no {PATH_COLUMN!r} column "
            f"(read_images(include_paths=True) adds it). Columns: {', '.join(frame.columns)}"
        )
    return image_column


def _content_hashes(table: pa.Table, image_column: str) -> pa.Array:
    """A hash of each row's encoded image bytes (the key's content half)."""
    column = table.column(image_column)
    hashes = []
    for chunk in column.chunks:
        storage = chunk.storage if isinstance(chunk, pa.ExtensionArray) else chunk
        data = storage.field("bytes") if pa.types.is_struct(storage.type) else storage
        hashes += [None if b is None else hashlib.blake2b(b, digest_size=16).hexdigest() for b in data.to_pylist()]
    return pa.array(hashes, pa.string())


class _Keys:
    """The path and content hash of each row (runs on the cluster)."""

    def __init__(self, image_column: str):
        self.image_column = image_column

    def __call__(self, table: pa.Table) -> pa.Table:
        return pa.table({PATH_COLUMN: table.column(PATH_COLUMN),
                         KEY_COLUMN: _content_hashes(table, self.image_column)})


class _SkipDone:
    """Drop the rows whose key the checkpoint holds (runs on the cluster, before any decoding)."""

    def __init__(self, image_column: str, done: frozenset[str]):
        self.image_column = image_column
        self.done = done

    def __call__(self, table: pa.Table) -> pa.Table:
        if not self.done or table.num_rows == 0:
            return table
        keys = _keys_of(table.append_column(KEY_COLUMN, _content_hashes(table, self.image_column)))
        return table.filter(pa.array([k not in self.done for k in keys], pa.bool_()))


class _WritePart:
    """Write one finished block as one Parquet part, atomically, named by the keys it holds."""

    def __init__(self, fs: Any, root: str, image_column: str):
        self.fs, self.root, self.image_column = fs, root, image_column

    def __call__(self, table: pa.Table) -> pa.Table:
        import pyarrow.parquet as pq

        if table.num_rows == 0:
            return _WRITTEN.empty_table()
        table = table.append_column(KEY_COLUMN, _content_hashes(table, self.image_column))
        table = table.drop_columns([self.image_column])
        name = hashlib.blake2b("\n".join(sorted(_keys_of(table))).encode(), digest_size=16).hexdigest()
        final = f"{self.root}/part-{name}.parquet"
        tmp = f"{self.root}/{_TMP_PREFIX}{name}-{uuid.uuid4().hex}.parquet"
        with self.fs.open(tmp, "wb") as f:
            pq.write_table(table, f)
        self.fs.mv(tmp, final)
        return pa.table({"rows": pa.array([table.num_rows], pa.int64())}, schema=_WRITTEN)


def _keys_of(table: pa.Table) -> list[str]:
    paths = table.column(PATH_COLUMN).to_pylist()
    hashes = table.column(KEY_COLUMN).to_pylist()
    return [f"{p}\0{h}" for p, h in zip(paths, hashes)]


def _filesystem(url: str, storage_options: dict | None) -> tuple[Any, str]:
    fs, root = filesystem(url, storage_options)
    fs.makedirs(root, exist_ok=True)
    return fs, root.rstrip("/")


def _is_hidden(path: str) -> bool:
    return path.rsplit("/", 1)[-1].startswith((".", "_"))


def _remove_unfinished(fs: Any, root: str) -> None:
    # Parts a crash left half-written: invisible to readers, removed so they do not pile up.
    for path in fs.find(root):
        if path.rsplit("/", 1)[-1].startswith(_TMP_PREFIX):
            fs.rm(path)
