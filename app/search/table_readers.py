"""Reading a stored upload (CSV, Parquet, NPZ) into a frame, every limit checked first.

What a file declares about itself (a zip member's size, a `.npy` header's shape, a
Parquet footer's sizes) is checked before anything is allocated, and then the bytes
actually unpacked are counted as they are read: a reader stops at the cap, whatever
the file claimed.

Every reader answers the same kinds of columns, for the profile at upload and for the
search that reads the file back: numbers, booleans and text. A decimal or a duration is a
number (a duration in seconds), not one category per distinct value; dates and times stay
as they are read, for app.search.table_profiles to refuse with a hint.
"""

from __future__ import annotations

import math
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd

from app.errors import DatasetError
from app.search.csv_header import csv_encoding

NPZ_TARGET = "y"
NPY_CHUNK = 1 << 20
PARQUET_BATCH_ROWS = 4096


def read_table(
    path: Path,
    fmt: str,
    *,
    max_unpacked_bytes: int,
    max_columns: int | None = None,
    max_rows: int | None = None,
) -> pd.DataFrame:
    """Read a stored upload; every parse failure becomes a 422 naming the problem."""
    if fmt == "csv":
        return _read_csv(path, max_columns, max_rows)
    if fmt == "parquet":
        return _read_parquet(path, max_unpacked_bytes, max_columns)
    if fmt == "npz":
        return _read_npz(path, max_unpacked_bytes, max_columns, max_rows)
    raise DatasetError(f"unsupported format {fmt!r}")


def table_size(path: Path, fmt: str) -> tuple[int, int] | None:
    """(rows, columns) of a stored upload without parsing it, for a refusal's message: a
    CSV's rows counted as its line ends (a quoted line break counts too), a Parquet
    file's from its footer, an NPZ's from x's header. None when it cannot tell."""
    try:
        if fmt == "csv":
            return _csv_size(path)
        if fmt == "parquet":
            import pyarrow.parquet as pq

            metadata = pq.ParquetFile(path).metadata
            return metadata.num_rows, metadata.num_columns
        if fmt == "npz":
            with zipfile.ZipFile(path) as archive, archive.open("x.npy") as member:
                np.lib.format.read_magic(member)
                shape = np.lib.format.read_array_header_1_0(member)[0]
            rows = shape[0] if shape else 1
            return rows, (math.prod(shape[1:]) if len(shape) > 1 else 1) + 1
    except Exception:  # only a message depends on it
        return None
    return None


def _csv_size(path: Path) -> tuple[int, int]:
    ends = {b"\n": 0, b"\r": 0}
    columns = 0
    with path.open("rb") as raw:
        while chunk := raw.read(NPY_CHUNK):
            if not columns:
                first = chunk.replace(b"\r", b"\n").split(b"\n", 1)[0]
                columns = first.count(b",") + 1
            for end in ends:
                ends[end] += chunk.count(end)
    lines = ends[b"\n"] or ends[b"\r"]  # CR-only line ends (old Mac) count as lines too
    return max(lines - 1, 0), columns


def reason(exc: BaseException, path: Path) -> str:
    """The reader's message without the server's temp path in it."""
    return str(exc).replace(str(path), "the upload")


def _read_csv(path: Path, max_columns: int | None, max_rows: int | None) -> pd.DataFrame:
    return CsvTable.open(path, max_columns=max_columns, max_rows=max_rows).read()


@dataclass(frozen=True)
class CsvTable:
    """A CSV whose encoding and header are checked, read whole or a few columns at a time.

    Columns read apart come out as they do read together: pandas parses a CSV in blocks of
    rows sized by the file's width, whichever columns are kept, and infers each column's
    type block by block."""

    path: Path
    encoding: str

    @classmethod
    def open(cls, path: Path, *, max_columns: int | None, max_rows: int | None) -> CsvTable:
        return cls(path, csv_encoding(path, max_columns=max_columns, max_rows=max_rows))

    def names(self) -> list[str]:
        """The column names as pandas gives them (an empty name is "Unnamed: <i>")."""
        return [str(c) for c in self.read(rows=0).columns]

    def read(self, positions: list[int] | None = None, *, rows: int | None = None) -> pd.DataFrame:
        try:
            # No compression inference: a .csv is read as the plain text it claims to be.
            return pd.read_csv(
                self.path,
                compression=None,
                encoding=self.encoding,
                skipinitialspace=True,
                usecols=positions,
                nrows=rows,
            )
        except pd.errors.EmptyDataError as exc:
            raise DatasetError("the CSV file is empty") from exc
        except pd.errors.ParserError as exc:
            raise DatasetError(f"malformed CSV: {str(exc).strip()}") from exc
        except ValueError as exc:
            raise DatasetError(f"malformed CSV: {exc}") from exc


def _read_parquet(path: Path, max_unpacked_bytes: int, max_columns: int | None) -> pd.DataFrame:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except Exception as exc:
        raise DatasetError(
            f"not a readable Parquet file: cannot open the upload: {reason(exc, path)}"
        ) from exc
    try:
        schema = parquet.schema_arrow
        if max_columns is not None and len(schema) > max_columns:
            raise DatasetError(f"{len(schema)} columns is over the limit of {max_columns}")
        for column in schema:
            if pa.types.is_nested(column.type):
                raise DatasetError(
                    f"column {column.name!r} holds nested values ({column.type}); "
                    "every column must hold single numbers or strings"
                )
        # The footer's sizes are the writer's word: count what decoding really produces,
        # one small batch at a time, and stop at the cap.
        unpacked = 0
        for batch in parquet.iter_batches(batch_size=PARQUET_BATCH_ROWS, use_threads=False):
            unpacked += batch.nbytes
            if unpacked > max_unpacked_bytes:
                raise DatasetError(
                    f"the Parquet file unpacks to more than {unpacked} bytes, "
                    f"over the limit of {max_unpacked_bytes}"
                )
        return _as_numbers(pd.read_parquet(path, use_threads=False), schema)
    except (DatasetError, MemoryError):
        raise
    except Exception as exc:  # pyarrow raises many types for corrupt files
        raise DatasetError(f"not a readable Parquet file: {reason(exc, path)}") from exc


def _as_numbers(frame: pd.DataFrame, schema: Any) -> pd.DataFrame:
    """Decimal and duration columns as float64 (durations in seconds)."""
    import pyarrow as pa

    for column in schema:
        if pa.types.is_decimal(column.type):
            frame[column.name] = frame[column.name].astype("float64")
        elif pa.types.is_duration(column.type):
            frame[column.name] = seconds(frame[column.name])
    return frame


def seconds(series: pd.Series) -> pd.Series:
    """A duration column as float seconds, a missing duration as NaN."""
    return pd.to_timedelta(series).dt.total_seconds().astype("float64")


class _Budget:
    """Bytes unpacked from the archive so far, against the cap."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.used = 0

    def take(self, n: int, what: str) -> None:
        self.used += n
        if self.used > self.cap:
            raise DatasetError(
                f"the NPZ archive unpacks to at least {self.used} bytes ({what}), "
                f"over the limit of {self.cap}"
            )


def _read_npy(
    member: IO[bytes], name: str, budget: _Budget, check_shape: Callable[[tuple[int, ...]], None]
) -> np.ndarray:
    """One `.npy` member, its header's declared size checked before the array is allocated."""
    fmt = np.lib.format
    version = fmt.read_magic(member)
    if version == (1, 0):
        shape, fortran, dtype = fmt.read_array_header_1_0(member)
    elif version == (2, 0):
        shape, fortran, dtype = fmt.read_array_header_2_0(member)
    else:
        raise DatasetError(f"array {name!r} uses .npy format version {version}; save it with numpy")
    if dtype.hasobject:
        raise DatasetError(
            f"the NPZ file cannot be loaded safely: array {name!r} holds Python objects, "
            "which cannot be loaded with allow_pickle=False"
        )
    nbytes = math.prod(shape) * dtype.itemsize
    check_shape(shape)
    budget.take(nbytes, f"array {name!r} declares shape {list(shape)}, {nbytes} bytes")
    data = bytearray(nbytes)
    view, filled = memoryview(data), 0
    while filled < nbytes:
        got = member.readinto(view[filled : filled + NPY_CHUNK])
        if not got:
            raise DatasetError(
                f"array {name!r} is truncated: its header declares {nbytes} bytes, "
                f"the archive holds {filled}"
            )
        filled += got
    if member.read(1):
        raise DatasetError(f"array {name!r} holds more bytes than its header declares")
    array = np.frombuffer(data, dtype=dtype)
    if not dtype.isnative:
        # Saved on a big-endian machine (or with an explicit '>' dtype): swapped in place, in
        # the buffer just read, so pandas and the search get native numbers without a copy.
        array.byteswap(inplace=True)
        array = array.view(dtype.newbyteorder("="))
    return array.reshape(shape, order="F" if fortran else "C")


def _read_npz(
    path: Path, max_unpacked_bytes: int, max_columns: int | None, max_rows: int | None
) -> pd.DataFrame:
    budget = _Budget(max_unpacked_bytes)
    try:
        with zipfile.ZipFile(path) as archive:
            members = {
                info.filename.removesuffix(".npy"): info
                for info in archive.infolist()
                if not info.is_dir()
            }
            # What the archive declares can only refuse early; what is read is counted below.
            declared = sum(info.file_size for info in members.values())
            if declared > max_unpacked_bytes:
                raise DatasetError(
                    f"the NPZ archive unpacks to {declared} bytes, "
                    f"over the limit of {max_unpacked_bytes}"
                )
            missing = [k for k in ("x", "y") if k not in members]
            if missing:
                raise DatasetError(
                    f"the NPZ file needs arrays 'x' and 'y'; "
                    f"missing {missing}, found {sorted(members)}"
                )
            arrays: dict[str, np.ndarray] = {}
            check_shapes: dict[str, Callable[[tuple[int, ...]], None]] = {
                "x": lambda shape: _check_x_shape(shape, max_columns, max_rows),
                "y": lambda shape: None,
            }
            for name in ("x", "y"):
                with archive.open(members[name]) as member:
                    arrays[name] = _read_npy(member, name, budget, check_shapes[name])
    except DatasetError:
        raise
    except ValueError as exc:
        raise DatasetError(f"the NPZ file cannot be loaded safely: {exc}") from exc
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise DatasetError(f"not a readable NPZ file: {reason(exc, path)}") from exc
    return _npz_frame(arrays["x"], arrays["y"])


def _check_x_shape(shape: tuple[int, ...], max_columns: int | None, max_rows: int | None) -> None:
    rows = shape[0] if shape else 1
    columns = 1 if len(shape) < 2 else math.prod(shape[1:])
    if max_rows is not None and rows > max_rows:
        raise DatasetError(f"{rows} rows is over the limit of {max_rows}")
    if max_columns is not None and columns + 1 > max_columns:
        raise DatasetError(f"{columns + 1} columns is over the limit of {max_columns}")


def _npz_frame(x: np.ndarray, y: np.ndarray) -> pd.DataFrame:
    if x.ndim == 1:
        x = x.reshape(-1, 1)
    if x.ndim != 2:
        raise DatasetError(f"'x' must be a 2-D array of rows, got shape {list(x.shape)}")
    if y.ndim == 2 and y.shape[1] == 1:
        y = y.reshape(-1)
    if y.ndim != 1:
        raise DatasetError(f"'y' must be a 1-D array, got shape {list(y.shape)}")
    if len(x) != len(y):
        raise DatasetError(f"'x' has {len(x)} rows but 'y' has {len(y)}")
    if x.dtype.kind not in "biuf":
        raise DatasetError(f"'x' must be numeric, got dtype {x.dtype}")
    if y.dtype.kind not in "biufUSmM":
        raise DatasetError(
            f"target {NPZ_TARGET!r} has dtype {y.dtype}: it must hold numbers, booleans or strings",
            field="target",
        )
    # No copy: the array read from the archive is the frame's only block.
    frame = pd.DataFrame(x, columns=[f"x{i}" for i in range(x.shape[1])], copy=False)
    frame[NPZ_TARGET] = seconds(pd.Series(y)) if y.dtype.kind == "m" else y
    return frame
