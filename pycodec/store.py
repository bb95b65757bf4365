"""HDF5 storage for schema ``pycodec/1``: a streaming, crash-safe writer and a small reader."""

from __future__ import annotations

import collections
import contextlib
import errno
import hashlib
import os
import tempfile
import threading
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import h5py
import numpy as np

import pycodec as _pkg
from pycodec._core import pack_chunk as _pack_chunk

if TYPE_CHECKING:
    from typing import Self

SCHEMA = "pycodec/1"
COMPRESSIONS = ("lzf", "gzip", "none")
GZIP_LEVEL = 4
NOPTS = np.iinfo(np.int64).min  # stored in frame/pts when the frame has no timestamp (AV_NOPTS_VALUE)

# Per-frame metadata stored as 1-D datasets under frame/ (name -> dtype).
FRAME_META: dict[str, type] = {
    "decode_index": np.int32,
    "pts": np.int64,
    "poc": np.int32,
    "type": np.uint8,
    "key": np.bool_,
    "pkt_bytes": np.int32,
    "flags": np.uint32,
}
META_CHUNK = 1024  # frames per chunk of the 1-D frame/ datasets (one frame per chunk would be mostly index)


class StoreError(_pkg.PycodecError):
    """Storage failure with a one-line message "<path>: <what is wrong>; <what to do>"."""


def _os_reason(exc: BaseException) -> str:
    """Short text for an OSError raised by the OS or by HDF5 (which often hides errno in the text)."""
    text = str(exc)
    if getattr(exc, "errno", None) == errno.ENOSPC or "No space left" in text or "errno = 28" in text:
        return "no space left on device; free some space or write to another directory"
    if getattr(exc, "errno", None) == errno.EFBIG or "File too large" in text or "errno = 27" in text:
        return "file too large (file size limit reached); write to a filesystem or account without that limit"
    if getattr(exc, "errno", None) in (errno.EACCES, errno.EPERM) or "Permission denied" in text:
        return "permission denied; choose a directory you can write to"
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return f"write failed ({first}); check the disk and the output directory"


def sha256_file(path: str | os.PathLike, bufsize: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in blocks (recorded as ``source_sha256``)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(bufsize):
            h.update(block)
    return h.hexdigest()


def new_file_mode() -> int:
    """Permissions of a newly created file under the current umask (temp files are created 0600)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def package_version() -> str:
    """The pycodec version string recorded in every file."""
    return _pkg.__version__


def root_attrs(
    info: Mapping[str, Any], fields: Iterable[str], source: str, source_sha256: str, **extra: Any
) -> dict[str, Any]:
    """Root attributes of schema pycodec/1 from a ``pycodec.info()`` dict (plus crop, profile, ...)."""
    attrs: dict[str, Any] = {
        "schema": SCHEMA,
        "codec": info.get("codec", ""),
        "width": int(info["width"]),
        "height": int(info["height"]),
        "coded_width": int(info.get("coded_width", info["width"])),
        "coded_height": int(info.get("coded_height", info["height"])),
        "bit_depth": int(info.get("bit_depth", 8)),
        "chroma_format": str(info.get("chroma_format", "420")),
        "frame_rate": np.asarray(info.get("frame_rate", (0, 1)), dtype=np.int64),
        "time_base": np.asarray(info.get("time_base", (0, 1)), dtype=np.int64),
        "source": str(source),
        "source_sha256": source_sha256,
        "ffmpeg": str(info.get("ffmpeg", "")),
        "pycodec": package_version(),
        "fields": ",".join(fields),
    }
    if info.get("crop") is not None:
        attrs["crop"] = np.asarray(info["crop"], dtype=np.int32)  # top, bottom, left, right
    for key in ("profile", "pix_fmt"):
        if info.get(key):
            attrs[key] = str(info[key])
    attrs.update({k: v for k, v in extra.items() if v is not None})
    return attrs


def _filters(compression: str, itemsize: int) -> dict[str, Any]:
    """h5py dataset keyword arguments for a compression name and element size."""
    if compression == "lzf":
        return {"compression": "lzf"}
    if compression == "gzip":
        return {"compression": "gzip", "compression_opts": GZIP_LEVEL, "shuffle": itemsize > 1}
    return {}


class H5Writer:
    """Streams frames into a temporary HDF5 file next to ``path``; renamed on close, removed on failure.

    Under ``lzf`` and ``none`` each frame's chunk is written as it arrives with HDF5's direct chunk
    write (LZF-compressed by ``pycodec._core.pack_chunk``), bypassing h5py's selection and type
    conversion. Under ``gzip`` frames are buffered in small batches (bounded by ``batch_bytes``) and
    written through h5py. Datasets grow in steps (preallocated from ``nb_frames`` when known,
    trimmed at the end), keeping per-frame overhead low.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        attrs: Mapping[str, Any],
        *,
        compression: str = "lzf",
        overwrite: bool = False,
        nb_frames: int = 0,
        batch_bytes: int = 32 << 20,
        max_batch: int = 32,
        skip_zero: bool = True,
    ) -> None:
        if compression not in COMPRESSIONS:
            raise StoreError(
                f"{path}: unknown compression {compression!r}; use one of {', '.join(COMPRESSIONS)}"
            )
        self.path = os.path.abspath(os.fspath(path))
        self.compression = compression
        self.overwrite = overwrite
        self.batch_bytes, self.max_batch, self.skip_zero = batch_bytes, max_batch, skip_zero
        self.n = 0  # frames accepted so far
        self._flushed = 0  # frames written to the file
        self._k = 0  # frames waiting in the buffers
        self._batch = 1
        self._cap = max(int(nb_frames or 0), 0)
        self._dsets: dict[str, h5py.Dataset] = {}
        self._bufs: dict[str, np.ndarray] = {}
        # Direct chunk writes (lzf, none): name -> (dataset id, shape, dtype, LZF-compress?).
        self._direct = compression in ("lzf", "none")
        self._dchunks: dict[str, tuple[Any, tuple[int, ...], np.dtype, bool]] = {}
        self._meta = {k: np.zeros(META_CHUNK, dt) for k, dt in FRAME_META.items()}
        self._h5: h5py.File | None = None
        self.tmp: str | None = None
        self.closed = False
        self._check_target()
        folder = os.path.dirname(self.path)
        try:
            fd, self.tmp = tempfile.mkstemp(
                prefix=f".{os.path.basename(self.path)}.", suffix=".part", dir=folder
            )
            os.close(fd)
            # No chunk cache: every chunk is compressed and written in its own write call. Same speed
            # (chunks are written whole), less memory, and a write error (full disk) leaves no dirty
            # cache behind, which HDF5 otherwise tries to flush at close and crashes on.
            self._h5 = h5py.File(self.tmp, "w", rdcc_nbytes=0)
            for k, v in attrs.items():
                self._h5.attrs[k] = v
            for k, dt in FRAME_META.items():
                self._h5.create_dataset(
                    f"frame/{k}",
                    shape=(self._cap,),
                    maxshape=(None,),
                    dtype=dt,
                    chunks=(META_CHUNK,),
                    **_filters(compression, np.dtype(dt).itemsize),
                )
        except OSError as exc:
            self.abort()
            raise StoreError(f"{self.path}: {_os_reason(exc)}") from exc
        except BaseException:
            self.abort()
            raise

    def _check_target(self) -> None:
        """Refuse early (before decoding) when the output cannot be written."""
        folder = os.path.dirname(self.path)
        if not os.path.isdir(folder):
            raise StoreError(f"{self.path}: directory {folder} does not exist; create it first")
        if os.path.isdir(self.path):
            raise StoreError(f"{self.path}: is a directory; give a file name such as out.h5")
        if os.path.lexists(self.path) and not self.overwrite:
            raise StoreError(f"{self.path}: already exists; pass --overwrite to replace it")

    # ------------------------------------------------------------------ writing
    def _create(self, name: str, arr: np.ndarray) -> None:
        """Create dataset ``name`` (N, *arr.shape) with one frame per chunk, and its batch buffer."""
        assert self._h5 is not None
        shape = tuple(arr.shape)
        self._dsets[name] = self._h5.create_dataset(
            name,
            shape=(self._cap, *shape),
            maxshape=(None, *shape),
            dtype=arr.dtype,
            chunks=(1, *shape) if shape else (META_CHUNK,),
            **_filters(self.compression, arr.dtype.itemsize),
        )
        if self._direct and shape:
            lzf = self._dsets[name].compression == "lzf"
            self._dchunks[name] = (self._dsets[name].id, shape, arr.dtype, lzf)
        else:
            self._bufs[name] = np.zeros((self._batch, *shape), dtype=arr.dtype)

    def _plan(self, arrays: Mapping[str, np.ndarray]) -> None:
        """Choose the batch size from the first frame's byte size."""
        frame_bytes = sum(int(a.nbytes) for a in arrays.values()) or 1
        self._batch = int(max(1, min(self.max_batch, self.batch_bytes // frame_bytes)))

    def append(self, frame: Any) -> None:
        """Add one Frame (attributes of ``pycodec.Frame``); missing arrays are stored as zeros."""
        if self.closed or self._h5 is None:
            raise StoreError(f"{self.path}: writer is closed; open a new H5Writer")
        try:
            self._append(frame)
        except OSError as exc:
            self.abort()
            raise StoreError(f"{self.path}: {_os_reason(exc)}") from exc
        except BaseException:
            self.abort()
            raise

    def _append(self, frame: Any) -> None:
        arrays: Mapping[str, np.ndarray] = frame.arrays
        if self.n == 0:
            self._plan(arrays)
        if self._direct:
            self._write_direct(arrays)
        for name, arr in arrays.items():
            if name in self._dchunks:
                continue
            arr = np.asarray(arr)
            if name not in self._dsets:
                if name.startswith("frame/") or "/" not in name:
                    raise StoreError(
                        f"{self.path}: array name {name!r} is not a schema path; "
                        "arrays must be named group/name outside frame/"
                    )
                self._create(name, arr)
            buf = self._bufs[name]
            if arr.shape != buf.shape[1:] or arr.dtype != buf.dtype:
                raise StoreError(
                    f"{self.path}: frame {self.n}: {name} is {arr.dtype}{list(arr.shape)}, "
                    f"earlier frames were {buf.dtype}{list(buf.shape[1:])}; "
                    "streams that change size or format mid-way are not supported"
                )
            buf[self._k] = arr
        if len(arrays) != len(self._bufs):
            for name, buf in self._bufs.items():
                if name not in arrays:
                    buf[self._k] = 0
        j = self.n % META_CHUNK
        m = self._meta
        m["decode_index"][j] = frame.decode_index
        m["pts"][j] = NOPTS if frame.pts is None else frame.pts
        m["poc"][j] = frame.poc
        t = frame.type
        m["type"][j] = ord(t[0]) if isinstance(t, str) else int(t)
        m["key"][j] = bool(frame.key)
        m["pkt_bytes"][j] = frame.pkt_bytes
        m["flags"][j] = int(frame.flags)
        self.n += 1
        self._k += 1
        if self._k >= self._batch:
            self._flush()
        if self.n % META_CHUNK == 0:
            self._flush_meta()

    def _write_direct(self, arrays: Mapping[str, np.ndarray]) -> None:
        """Write this frame's chunk of every direct-write dataset (lzf, none) straight to the file."""
        i = self.n
        self._ensure_capacity(i + 1)
        seen = 0
        for name, arr in arrays.items():
            arr = np.asarray(arr)
            if name not in self._dsets:
                if name.startswith("frame/") or "/" not in name:
                    continue  # reported by the buffered path
                if not arr.shape:
                    continue  # scalars go through the buffered path
                self._create(name, arr)
                self._ensure_capacity(i + 1)
            entry = self._dchunks.get(name)
            if entry is None:
                continue
            seen += 1
            dsid, shape, dtype, lzf = entry
            if arr.shape != shape or arr.dtype != dtype:
                raise StoreError(
                    f"{self.path}: frame {i}: {name} is {arr.dtype}{list(arr.shape)}, "
                    f"earlier frames were {dtype}{list(shape)}; "
                    "streams that change size or format mid-way are not supported"
                )
            if not arr.flags.c_contiguous:
                arr = np.ascontiguousarray(arr)
            # None: all zero, the chunk is left unallocated and reads as the fill value 0. Else the
            # LZF bytes, or the raw array with the LZF filter marked skipped (mask bit 0) when LZF
            # would not shrink it (HDF5 allows that per chunk; h5py reads both).
            packed = _pack_chunk(arr, lzf)
            offset = (i,) + (0,) * len(shape)
            if packed is not None:
                dsid.write_direct_chunk(offset, packed[0], packed[1])
            elif not self.skip_zero:
                dsid.write_direct_chunk(offset, arr, int(lzf))  # raw zeros, filter skipped
        if seen != len(self._dchunks) and not self.skip_zero:
            for name, (dsid, shape, dtype, lzf) in self._dchunks.items():
                if name not in arrays:  # missing array: zeros, stored raw
                    dsid.write_direct_chunk((i,) + (0,) * len(shape), np.zeros(shape, dtype), int(lzf))

    def _ensure_capacity(self, size: int) -> None:
        """Grow every dataset to at least ``size`` frames (geometric steps: few resizes)."""
        if size <= self._cap:
            return
        self._cap = max(size, self._cap + self._cap // 2, 64)
        assert self._h5 is not None
        for k in FRAME_META:
            self._h5[f"frame/{k}"].resize(self._cap, axis=0)
        for d in self._dsets.values():
            d.resize(self._cap, axis=0)

    def _flush(self) -> None:
        """Write the buffered frames to their datasets."""
        k = self._k
        if not k:
            return
        a = self._flushed
        self._ensure_capacity(a + k)
        for name, buf in self._bufs.items():
            d = self._dsets[name]
            block = buf[:k]
            if not self.skip_zero:
                d[a : a + k] = block
                continue
            # Frames whose array is all zero are not written: their chunk stays unallocated and
            # reads as the fill value 0 (saves compression time and space on sparse data).
            nz = block.reshape(k, -1).any(axis=1)
            if nz.all():
                d[a : a + k] = block
            elif nz.any():
                edges = np.flatnonzero(np.diff(np.concatenate(([0], nz.view(np.int8), [0]))))
                for i, j in zip(edges[::2], edges[1::2], strict=True):
                    d[a + i : a + j] = block[i:j]
        self._flushed += k
        self._k = 0

    def _flush_meta(self) -> None:
        """Write the pending per-frame metadata (whole or partial chunk of META_CHUNK frames)."""
        assert self._h5 is not None
        start = ((self.n - 1) // META_CHUNK) * META_CHUNK if self.n else 0
        count = self.n - start
        if count <= 0:
            return
        self._ensure_capacity(self.n)
        for k, buf in self._meta.items():
            d = self._h5[f"frame/{k}"]
            if not self._direct:
                d[start : self.n] = buf[:count]
                continue
            # A whole chunk written directly (the part past the last frame is cut off by close()).
            buf[count:] = 0
            packed = _pack_chunk(buf, self.compression == "lzf")
            if packed is None:
                packed = (buf, int(self.compression == "lzf"))  # all zero: raw, filter skipped
            d.id.write_direct_chunk((start,), packed[0], packed[1])

    # ------------------------------------------------------------------ finishing
    def close(self) -> str:
        """Flush, trim to the frames written and atomically move the file into place; returns the path."""
        if self.closed:
            return self.path
        try:
            self._flush()
            if self.n % META_CHUNK:
                self._flush_meta()
            assert self._h5 is not None
            if self._cap != self.n:  # every dataset has self._cap frames
                for k in FRAME_META:
                    self._h5[f"frame/{k}"].resize(self.n, axis=0)
                for d in self._dsets.values():
                    d.resize(self.n, axis=0)
            self._h5.attrs["nb_frames"] = self.n
            self._h5.close()
            self._h5 = None
            if os.path.lexists(self.path) and not self.overwrite:
                raise StoreError(f"{self.path}: appeared while extracting; pass --overwrite to replace it")
            assert self.tmp is not None
            os.chmod(self.tmp, new_file_mode())
            os.replace(self.tmp, self.path)
            self.tmp = None
            self.closed = True
        except OSError as exc:
            self.abort()
            raise StoreError(f"{self.path}: {_os_reason(exc)}") from exc
        except BaseException:
            self.abort()
            raise
        return self.path

    def abort(self) -> None:
        """Drop everything: close the HDF5 handle quietly and delete the temporary file."""
        self.closed = True
        if self._h5 is not None:
            if self.tmp is not None:
                # Free the file's blocks first, so that HDF5 can flush its caches while closing even
                # when the disk is full (a failed close leaves HDF5 objects that crash at exit).
                with contextlib.suppress(OSError):
                    os.truncate(self.tmp, 0)
            with contextlib.suppress(OSError, RuntimeError, ValueError):
                self._h5.close()
            self._h5 = None
            self._dsets.clear()
        if self.tmp is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.tmp)
            self.tmp = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


_STOP = object()  # end-of-stream marker of PipelinedWriter's queue


class PipelinedWriter:
    """An :class:`H5Writer` fed through a bounded queue by a background thread.

    ``append()`` only queues the frame; the thread runs ``H5Writer.append`` on the frames in order:
    LZF compression (``pycodec._core.pack_chunk``, which releases the GIL) and the HDF5 chunk
    writes. The decoding thread (``pycodec._core`` releases the GIL while decoding) thus overlaps
    with compression and writing on a second CPU. ``append()`` blocks while ``depth`` frames or
    ``max_bytes`` of arrays are waiting or being written (one frame always fits), so memory stays
    bounded. The file is identical to the one H5Writer alone writes, with the same guarantees: the
    temporary file is renamed by ``close()`` and nothing is left behind on failure. A failure in the
    thread (a full disk, a frame of another size) is raised, as the same exception (a one-line
    StoreError), by the next ``append()`` or by ``close()``. Only the thread touches the H5Writer
    (and h5py) until it has stopped.
    """

    def __init__(self, writer: H5Writer, depth: int = 4, max_bytes: int = 64 << 20) -> None:
        self.writer = writer
        self.path = writer.path
        self.depth, self.max_bytes = max(1, depth), max_bytes
        self._items: collections.deque[tuple[Any, int]] = collections.deque()
        self._cv = threading.Condition()
        self._pending = 0  # frames queued or being written
        self._pending_bytes = 0
        self._exc: BaseException | None = None
        self._discard = False  # abort(): drop what is still queued
        self._accepted = 0
        self._thread = threading.Thread(target=self._run, name="pycodec-h5-writer", daemon=True)
        self._thread.start()

    @property
    def n(self) -> int:
        """Frames accepted so far (queued or written)."""
        return self._accepted

    @property
    def closed(self) -> bool:
        return self.writer.closed

    def _run(self) -> None:
        while True:
            with self._cv:
                while not self._items:
                    self._cv.wait()
                frame, nbytes = self._items.popleft()
            if frame is _STOP:
                return
            if self._exc is None and not self._discard:
                try:
                    self.writer.append(frame)  # aborts the writer (temporary file removed) on failure
                except BaseException as exc:  # noqa: BLE001 - re-raised in the calling thread
                    self._exc = exc
            del frame
            with self._cv:
                self._pending -= 1
                self._pending_bytes -= nbytes
                self._cv.notify_all()

    def _put(self, item: Any, nbytes: int) -> None:
        with self._cv:
            while self._pending and (
                self._pending >= self.depth or self._pending_bytes + nbytes > self.max_bytes
            ):
                if self._exc is not None:
                    raise self._exc
                self._cv.wait()
            self._items.append((item, nbytes))
            self._pending += 1
            self._pending_bytes += nbytes
            self._cv.notify_all()

    def append(self, frame: Any) -> None:
        """Queue one frame; raises the writer thread's failure, if any."""
        if self._exc is not None:
            raise self._exc
        if not self._thread.is_alive():
            raise StoreError(f"{self.path}: writer is closed; open a new H5Writer")
        self._put(frame, sum(int(getattr(a, "nbytes", 0)) for a in frame.arrays.values()))
        self._accepted += 1

    def _stop(self) -> None:
        """Let the thread finish what is queued and wait for it."""
        if self._thread.is_alive():
            with self._cv:
                self._items.append((_STOP, 0))
                self._cv.notify_all()
            self._thread.join()

    def close(self) -> str:
        """Write what is queued, then close the H5Writer (rename into place); returns the path."""
        try:
            self._stop()
        except BaseException:
            self.abort()
            raise
        if self._exc is not None:
            self.writer.abort()  # already done by the failing append; idempotent
            raise self._exc
        return self.writer.close()

    def abort(self) -> None:
        """Drop everything: stop the thread (queued frames are discarded), remove the temporary file."""
        self._discard = True
        with self._cv:
            self._pending -= len(self._items)
            self._pending_bytes -= sum(nb for _, nb in self._items)
            self._items.clear()
        self._stop()
        self.writer.abort()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def write_frames(
    path: str | os.PathLike,
    frames: Iterable[Any],
    attrs: Mapping[str, Any],
    *,
    pipeline: bool = False,
    **kw: Any,
) -> int:
    """Write an iterable of frames to ``path`` in one go; returns the number of frames.

    ``pipeline``: write through a :class:`PipelinedWriter` (a background writer thread).
    """
    writer = H5Writer(path, attrs, **kw)
    with PipelinedWriter(writer) if pipeline else writer as w:
        for f in frames:
            w.append(f)
    return w.n


# ---------------------------------------------------------------------- reading


def _attr(v: Any) -> Any:
    """Plain Python value of an HDF5 attribute."""
    if isinstance(v, bytes):
        return v.decode()
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, np.generic):
        return v.item()
    return v


class ExtractedFile:
    """Read access to a file written by ``pycodec extract``: attributes, fields and frame N as a dict."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = os.fspath(path)
        if not os.path.exists(self.path):
            raise StoreError(f"{self.path}: no such file; check the path")
        try:
            self.h5 = h5py.File(self.path, "r")
        except OSError as exc:
            raise StoreError(
                f"{self.path}: not a readable HDF5 file; pass a file written by `pycodec extract`"
            ) from exc
        schema = _attr(self.h5.attrs.get("schema"))
        if schema != SCHEMA:
            self.h5.close()
            raise StoreError(
                f"{self.path}: schema is {schema!r}, expected {SCHEMA!r}; "
                "re-extract it with `pycodec extract`"
            )
        self.attrs: dict[str, Any] = {k: _attr(v) for k, v in self.h5.attrs.items()}

    @property
    def fields(self) -> list[str]:
        """Every dataset path in the file (e.g. 'frame/pts', 'decoded/y', 'block/mv_l0'), sorted."""
        names: list[str] = []
        self.h5.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
        return sorted(names)

    @property
    def groups(self) -> list[str]:
        """Top-level groups present (frame, decoded, block, ...)."""
        return sorted(k for k in self.h5 if isinstance(self.h5[k], h5py.Group))

    def __len__(self) -> int:
        return int(self.h5["frame/pts"].shape[0])

    def __contains__(self, name: str) -> bool:
        return name in self.h5 and isinstance(self.h5[name], h5py.Dataset)

    def __getitem__(self, name: str) -> h5py.Dataset:
        return self.h5[name]

    def frame(self, n: int, fields: Iterable[str] | None = None) -> dict[str, Any]:
        """Frame ``n`` (display order; negative counts from the end) as a dict of metadata and arrays."""
        total = len(self)
        if not -total <= n < total:
            raise IndexError(f"frame {n} out of range: the file has {total} frames (0..{total - 1})")
        n %= total
        out: dict[str, Any] = {"index": n}
        for k in FRAME_META:
            out[k] = self.h5[f"frame/{k}"][n].item()
        out["type"] = chr(out["type"]) if out["type"] else "?"
        out["key"] = bool(out["key"])
        want = [f for f in self.fields if not f.startswith("frame/")] if fields is None else list(fields)
        for name in want:
            if name.startswith("frame/"):
                continue
            out[name] = self.h5[name][n]
        return out

    def close(self) -> None:
        """Close the underlying HDF5 file."""
        self.h5.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_h5(path: str | os.PathLike) -> ExtractedFile:
    """Open an extracted file for reading (checks the schema)."""
    return ExtractedFile(path)


def read_frame(path: str | os.PathLike, n: int, fields: Iterable[str] | None = None) -> dict[str, Any]:
    """Read frame ``n`` of an extracted file as a dict (opens and closes the file)."""
    with ExtractedFile(path) as f:
        return f.frame(n, fields)
