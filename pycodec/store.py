"""HDF5 storage for schema ``pycodec/1``: a streaming, crash-safe writer and a small reader."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import queue
import stat
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

import h5py
import numpy as np
from h5py import h5a, h5d, h5p, h5s, h5t, h5z

import pycodec as _pkg
from pycodec._core import ChunkStager as _ChunkStager
from pycodec._core import buffer_format as _buffer_format
from pycodec._core import pack_frames as _pack_frames

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
# Groups of picture planes: stored one frame per chunk (reading frame n decompresses one plane).
PLANE_GROUPS = ("decoded", "prediction", "residual", "recon", "coeffs", "levels", "qstep")
# Other per-frame datasets (block maps, codec extras) may hold several frames per chunk: about
# CHUNK_BYTES of uncompressed data, at most max_chunk_frames frames. The default, 1, is the schema's
# one chunk per frame; more (e.g. 64) writes faster on one core and reads windows of frames faster.
CHUNK_BYTES = 128 << 10
MAX_CHUNK_FRAMES = 1


# Link creation: intermediate groups (frame/, block/, ...) are created with the dataset (as h5py does).
_LCPL = h5p.create(h5p.LINK_CREATE)
_LCPL.set_create_intermediate_group(True)


def _write_direct_chunk(dsid: Any, offset: tuple[int, ...], data: Any, filter_mask: int) -> None:
    """HDF5's direct chunk write: every chunk pycodec writes under lzf and none goes through here."""
    dsid.write_direct_chunk(offset, data, filter_mask)


_STR = h5py.string_dtype()  # variable-length UTF-8, how h5py stores a str attribute


def _set_attr(obj: Any, name: str, value: Any) -> None:
    """``obj.attrs[name] = value`` with h5py's low-level API for str and numbers (the same
    attribute as h5py writes, at half the cost); anything else through h5py."""
    if isinstance(value, (str, int, float, np.number, np.ndarray)) and not isinstance(value, bool):
        data = np.asarray(value, dtype=_STR if isinstance(value, str) else None)
        if isinstance(value, str) or data.dtype.kind in "iuf":
            key = name.encode()
            if h5a.exists(obj.id, key):
                h5a.delete(obj.id, key)
            space = h5s.create_simple(data.shape) if data.shape else h5s.create(h5s.SCALAR)
            aid = h5a.create(obj.id, key, h5t.py_create(data.dtype, logical=True), space)
            try:
                aid.write(data, mtype=h5t.py_create(data.dtype))
            finally:
                aid.close()
            return
    obj.attrs[name] = value


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


# What a failed write raises: the OS's errors, and h5py's RuntimeError when HDF5 cannot flush its
# caches (a disk that fills up while the file is being closed).
_WRITE_ERRORS = (OSError, RuntimeError)


def check_replaceable(path: str) -> None:
    """Refuse an existing ``path`` that is not a regular file: replacing a FIFO or a device node
    (e.g. under /dev, as root) with an HDF5 file would destroy it."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise StoreError(f"{path}: cannot inspect the existing output ({exc.strerror or exc}); check the path") from exc
    if not stat.S_ISREG(st.st_mode):
        kind = (
            "a FIFO" if stat.S_ISFIFO(st.st_mode)
            else "a device" if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode)
            else "a socket" if stat.S_ISSOCK(st.st_mode)
            else "a directory" if stat.S_ISDIR(st.st_mode)
            else "not a regular file"
        )
        raise StoreError(
            f"{path}: exists and is {kind}, not a regular file; pycodec only replaces regular files, "
            "give another output path"
        )


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


def write_atomically(path: str, write: Any, suffix: str = "") -> str:
    """Make ``path`` by ``write(tmp)`` on a temporary file in its folder, renamed into place when
    ``write`` returns: a reader never sees half a file, only a regular file is ever replaced
    (:func:`check_replaceable`), the file gets a new file's permissions, and on any error or
    signal the temporary file is removed."""
    check_replaceable(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=suffix,
                               dir=os.path.dirname(os.path.abspath(path)))
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, new_file_mode())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path


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


class _Series:
    """One per-frame dataset being written: its chunking and where its next chunk starts.

    Datasets of several frames per chunk (``k > 1``) gather their frames in the writer's
    :class:`pycodec._core.ChunkStager` (``stage`` is their index there). One-frame-chunk datasets
    are written as each frame arrives, or (gzip) in batches of ``batch`` frames kept in ``pending``.
    """

    __slots__ = (
        "batch",
        "dset",
        "dsid",
        "dtype",
        "frame_bytes",
        "k",
        "lzf",
        "name",
        "origin",
        "pending",
        "row",
        "shape",
        "stage",
        "start",
    )

    def __init__(self, name: str, dsid: Any, arr: np.ndarray, k: int, lzf: bool, first: int, batch: int) -> None:
        self.name, self.dsid = name, dsid
        self.dset = h5py.Dataset(dsid)  # for writes through h5py (gzip)
        self.shape, self.dtype = tuple(arr.shape), arr.dtype
        self.k, self.lzf, self.batch = k, lzf, batch
        self.frame_bytes = int(arr.nbytes)
        # bytes per row of a frame (image or block-map row): the LZF encoder tries the row above first
        self.row = self.frame_bytes // self.shape[0] if self.shape and self.shape[0] else 0
        self.origin = (0,) * len(self.shape)
        self.start = first - first % k  # file frame of the chunk (or batch) being gathered
        self.stage = -1
        self.pending: list[np.ndarray | None] = []


def chunk_frames(
    name: str,
    frame_bytes: int,
    nb_frames: int = 0,
    chunk_bytes: int = CHUNK_BYTES,
    max_frames: int = MAX_CHUNK_FRAMES,
) -> int:
    """Frames per chunk of dataset ``name`` whose frames are ``frame_bytes`` each.

    1 for picture planes (:data:`PLANE_GROUPS`); else as many frames as fit in ``chunk_bytes``
    (at least 1, at most ``max_frames``, and at most ``nb_frames`` when the frame count is known):
    1 with the defaults.
    """
    if name.split("/", 1)[0] in PLANE_GROUPS:
        return 1
    k = max(1, min(max_frames, chunk_bytes // max(int(frame_bytes), 1)))
    return min(k, nb_frames) if nb_frames > 0 else k


class H5Writer:
    """Streams frames into a temporary HDF5 file next to ``path``; renamed on close, removed on failure.

    Every dataset is stored one frame per chunk by default. ``max_chunk_frames`` > 1 lets the other
    per-frame datasets than picture planes (block maps, codec extras) hold several frames per chunk
    (:func:`chunk_frames`: about ``chunk_bytes`` each), which makes fewer chunks, and HDF5 calls, per
    frame. Their frames are copied into chunk buffers (``pycodec._core.ChunkStager``) until the
    chunk is full. Under ``lzf`` and
    ``none`` each chunk is written with HDF5's direct chunk write (LZF-compressed by
    ``pycodec._core``), bypassing h5py's selection and type conversion. Under ``gzip`` chunks are
    written through h5py (one-frame chunks in small batches bounded by ``batch_bytes``). Datasets
    are preallocated from ``nb_frames`` when it is known, else grown in steps, and trimmed to the
    frames written at the end.

    ``attrs`` become the root attributes, written with the first frame (or by ``close``); a value
    may be a callable, called then (with a :class:`PipelinedWriter`, in its thread: e.g. a hash of
    the input). ``attrs=None``: give them with :meth:`set_attrs` before the first frame.
    ``defer_open``: create the file on :meth:`open` or the first ``append`` instead of now (the
    output is checked and the temporary file made now); a :class:`PipelinedWriter` opens it in its
    thread, e.g. while the input is being opened.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        attrs: Mapping[str, Any] | None,
        *,
        compression: str = "lzf",
        overwrite: bool = False,
        nb_frames: int = 0,
        batch_bytes: int = 32 << 20,
        max_batch: int = 32,
        skip_zero: bool = True,
        chunk_bytes: int = CHUNK_BYTES,
        max_chunk_frames: int = MAX_CHUNK_FRAMES,
        defer_open: bool = False,
    ) -> None:
        if compression not in COMPRESSIONS:
            raise StoreError(
                f"{path}: unknown compression {compression!r}; use one of {', '.join(COMPRESSIONS)}"
            )
        given = os.fspath(path)
        if given.endswith((os.sep, "/")):
            raise StoreError(
                f"{given}: names a directory (ends with '/'); give a file name such as {given}out.h5"
            )
        # A symbolic link is followed: the file it points to is written (and replaced), the link stays.
        self.path = os.path.realpath(given) if os.path.islink(given) else os.path.abspath(given)
        self.compression = compression
        self.overwrite = overwrite
        self.batch_bytes, self.max_batch, self.skip_zero = batch_bytes, max_batch, skip_zero
        self.chunk_bytes, self.max_chunk_frames = chunk_bytes, max_chunk_frames
        self.nb_frames = max(int(nb_frames or 0), 0)  # expected frames (0: unknown)
        self.n = 0  # frames accepted so far
        self._batch = 1  # frames per h5py write of one-frame-chunk datasets (gzip)
        self._cap = self.nb_frames  # frames every dataset has room for
        self._series: dict[str, _Series] = {}
        self._staged: list[_Series] = []  # datasets of several frames per chunk, in stager order
        self._staged_names: list[str] = []
        self._single: list[_Series] = []  # datasets of one frame per chunk
        self._stager = _ChunkStager()
        # Direct chunk writes (lzf, none); gzip goes through h5py.
        self._direct = compression in ("lzf", "none")
        self._meta_rows: list[tuple[int, int, int, int, bool, int, int]] = []  # frame/ values, this chunk
        self._meta_ids: dict[str, Any] = {}  # low-level ids of the frame/ datasets
        self._h5: h5py.File | None = None
        self.tmp: str | None = None
        self.closed = False
        self._attrs = None if attrs is None else dict(attrs)
        self._attrs_written = False
        self.yield_gil = False  # set by PipelinedWriter (see _yield_gil)
        # Called by close() just before the finished file is moved into place; an exception it raises
        # (e.g. an interrupt that arrived while HDF5 was closing the file) aborts the writer instead.
        self.before_rename: Callable[[], None] | None = None
        self._check_target()
        folder = os.path.dirname(self.path)
        try:
            fd, self.tmp = tempfile.mkstemp(
                prefix=f".{os.path.basename(self.path)}.", suffix=".part", dir=folder
            )
            os.close(fd)
        except _WRITE_ERRORS as exc:
            self.abort()
            raise StoreError(f"{self.path}: {_os_reason(exc)}") from exc
        if not defer_open:
            self.open()

    def open(self) -> None:
        """Create the HDF5 file and its ``frame/`` datasets (the root attributes follow with the first
        frame); done by ``__init__`` unless ``defer_open``, else by the first ``append`` (or ``close``),
        or call it (e.g. in a writer thread)."""
        if self._h5 is not None or self.closed:
            return
        try:
            # No chunk cache: every chunk is compressed and written in its own write call. Same speed
            # (chunks are written whole), less memory, and a write error (full disk) leaves no dirty
            # cache behind, which HDF5 otherwise tries to flush at close and crashes on.
            assert self.tmp is not None
            self._yield_gil()
            self._h5 = h5py.File(self.tmp, "w", rdcc_nbytes=0)
            for k, dt in FRAME_META.items():
                self._meta_ids[k] = self._new_dataset(f"frame/{k}", (), np.dtype(dt), META_CHUNK)
        except _WRITE_ERRORS as exc:
            self.abort()
            raise StoreError(f"{self.path}: {_os_reason(exc)}") from exc
        except BaseException:
            self.abort()
            raise

    def set_attrs(self, attrs: Mapping[str, Any], nb_frames: int | None = None) -> None:
        """Root attributes, and the expected frame count, when they were not known at construction
        (``attrs=None``, e.g. to create the file while the input is being opened); before the first
        frame."""
        if self.n:
            raise StoreError(f"{self.path}: set_attrs() after the first frame; set them before")
        if nb_frames is not None:
            self.nb_frames = max(int(nb_frames or 0), 0)
        self._attrs = dict(attrs)  # written with the first frame

    def _write_attrs(self) -> None:
        """Write the root attributes and make room for the expected frames: with the first frame (or at
        close), whenever the attributes became known, so that the file's layout never depends on it."""
        assert self._h5 is not None
        if self._attrs is not None and not self._attrs_written:
            for k, v in self._attrs.items():
                _set_attr(self._h5, k, v() if callable(v) else v)
                self._yield_gil()
            self._attrs_written = True
        if self.nb_frames > self._cap and not self.n:
            self._resize(self.nb_frames)

    def _yield_gil(self) -> None:
        """In a writer thread, let a thread waiting for the GIL (the decoding one) run: creating the
        file and its datasets holds the GIL for milliseconds in h5py, which would stall decoding."""
        if self.yield_gil:
            time.sleep(0)

    def _new_dataset(self, name: str, shape: tuple[int, ...], dtype: np.dtype, k: int) -> Any:
        """Create dataset ``name`` of shape (capacity, *shape), chunks (k, *shape), maxshape (None, *shape);
        returns its low-level id.

        h5py's low-level API (what ``create_dataset`` does, without its per-call overhead): fill value
        0, no time stamps; filters: ``lzf`` the LZF filter, ``gzip`` deflate level GZIP_LEVEL after
        the shuffle filter on multi-byte types, ``none`` none.
        """
        assert self._h5 is not None
        dcpl = h5p.create(h5p.DATASET_CREATE)
        dcpl.set_chunk((k, *shape))
        if self.compression == "lzf":
            dcpl.set_filter(h5z.FILTER_LZF, h5z.FLAG_OPTIONAL)
        elif self.compression == "gzip":
            if dtype.itemsize > 1:
                dcpl.set_shuffle()
            dcpl.set_deflate(GZIP_LEVEL)
        dcpl.set_obj_track_times(False)
        space = h5s.create_simple((self._cap, *shape), (h5s.UNLIMITED, *shape))
        dsid = h5d.create(self._h5.id, name.encode(), h5t.py_create(dtype, logical=True), space,
                          dcpl=dcpl, lcpl=_LCPL)
        self._yield_gil()
        return dsid

    def _check_target(self) -> None:
        """Refuse early (before decoding) when the output cannot be written: only a regular file is
        ever replaced (never a FIFO, a device, a socket or a directory)."""
        folder = os.path.dirname(self.path)
        if not os.path.isdir(folder):
            raise StoreError(f"{self.path}: directory {folder} does not exist; create it first")
        if os.path.isdir(self.path):
            raise StoreError(f"{self.path}: is a directory; give a file name such as out.h5")
        if os.path.lexists(self.path) and not self.overwrite:
            raise StoreError(f"{self.path}: already exists; pass --overwrite to replace it")
        check_replaceable(self.path)

    # ------------------------------------------------------------------ writing
    def _create(self, name: str, arr: np.ndarray) -> _Series:
        """Create dataset ``name`` (N, *arr.shape), chunked by :func:`chunk_frames`, and its series."""
        assert self._h5 is not None
        if name.startswith("frame/") or "/" not in name:
            raise StoreError(
                f"{self.path}: array name {name!r} is not a schema path; "
                "arrays must be named group/name outside frame/"
            )
        k = chunk_frames(name, arr.nbytes, self.nb_frames, self.chunk_bytes, self.max_chunk_frames)
        if not arr.nbytes:
            k = 1  # empty frames: nothing is ever written
        dsid = self._new_dataset(name, tuple(arr.shape), arr.dtype, k)
        s = _Series(name, dsid, arr, k, self.compression == "lzf", self.n, self._batch)
        if k > 1 or (s.lzf and s.frame_bytes):
            # Under lzf every dataset is staged: its frames are compressed as they arrive, all in one
            # call per frame. The frames before this one in its chunk are zero (the array appeared
            # mid-chunk).
            s.stage = self._stager.add(
                list(arr.shape), _buffer_format(arr), arr.nbytes, k, s.row, self.n - s.start, s.lzf
            )
            self._staged.append(s)
            self._staged_names.append(name)
        else:
            self._single.append(s)
        self._series[name] = s
        return s

    def _plan(self, arrays: Mapping[str, np.ndarray]) -> None:
        """Choose the h5py batch (gzip, one-frame chunks) from the first frame's byte size."""
        frame_bytes = sum(int(np.asarray(a).nbytes) for a in arrays.values()) or 1
        self._batch = int(max(1, min(self.max_batch, self.batch_bytes // frame_bytes)))

    def append(self, frame: Any) -> None:
        """Add one Frame (attributes of ``pycodec.Frame``); missing arrays are stored as zeros.

        Arrays are copied or written before ``append`` returns, except one-frame-chunk arrays under
        ``gzip``, kept (not copied) until their batch is written: do not modify those afterwards.
        """
        if self.closed:
            raise StoreError(f"{self.path}: writer is closed; open a new H5Writer")
        if self._h5 is None:
            self.open()
        try:
            self._append(frame)
        except _WRITE_ERRORS as exc:
            self.abort()
            raise StoreError(f"{self.path}: {_os_reason(exc)}") from exc
        except BaseException:
            self.abort()
            raise

    def _mismatch(self, name: str, arr: Any, s: _Series) -> StoreError:
        arr = np.asarray(arr)
        return StoreError(
            f"{self.path}: frame {self.n}: {name} is {arr.dtype}{list(arr.shape)}, "
            f"earlier frames were {s.dtype}{list(s.shape)}; "
            "streams that change size or format mid-way are not supported"
        )

    def _append(self, frame: Any) -> None:
        arrays: Mapping[str, np.ndarray] = frame.arrays
        series = self._series
        if self.n == 0:
            if self._attrs is None:
                raise StoreError(f"{self.path}: no root attributes; pass attrs or call set_attrs() first")
            self._write_attrs()
            if not self._direct:
                self._plan(arrays)
        if not arrays.keys() <= series.keys():
            for name in arrays:
                if name not in series:  # first frame, or an array that appears mid-stream
                    self._create(name, np.asarray(arrays[name]))
        i = self.n
        if self._staged:
            staged = self._staged
            try:  # one call stages (copies or compresses) this frame of every staged dataset
                full = self._stager.put(list(map(arrays.get, self._staged_names)), self._direct)
            except ValueError:
                for s in staged:
                    a = arrays.get(s.name)
                    if a is not None:
                        a = np.asarray(a)
                        if a.shape != s.shape or a.dtype != s.dtype:
                            raise self._mismatch(s.name, a, s) from None
                raise
            if self._direct:  # (index, chunk) of the datasets whose chunk is full
                for j, packed in full:
                    s = staged[j]
                    self._write_chunk(s, packed)
                    s.start += s.k
            else:
                for j in full:
                    self._flush_staged(staged[j])
        for s in self._single:
            arr = arrays.get(s.name)
            if arr is not None:
                arr = np.asarray(arr)
                if arr.shape != s.shape or arr.dtype != s.dtype:
                    raise self._mismatch(s.name, arr, s)
            if not self._direct:
                s.pending.append(arr)
                if len(s.pending) >= s.batch:
                    self._flush_batch(s)
            elif arr is not None and s.frame_bytes:
                # None: all zero, the chunk is left unallocated and reads as the fill value 0. Else
                # the LZF bytes, or the raw array with the LZF filter marked skipped (mask bit 0)
                # when LZF would not shrink it (HDF5 allows that per chunk; h5py reads both).
                packed = _pack_frames([arr], s.frame_bytes, 1, s.lzf, s.row)
                self._ensure_capacity(i + 1)
                if packed is not None:
                    _write_direct_chunk(s.dsid, (i, *s.origin), packed[0], packed[1])
                elif not self.skip_zero:
                    _write_direct_chunk(s.dsid, (i, *s.origin), arr, int(s.lzf))  # raw zeros, filter skipped
            elif not self.skip_zero and s.frame_bytes:  # missing array: zeros, stored raw
                self._ensure_capacity(i + 1)
                _write_direct_chunk(s.dsid, (i, *s.origin), np.zeros(s.shape, s.dtype), int(s.lzf))
        t = frame.type
        pts = frame.pts
        self._meta_rows.append((  # in FRAME_META order
            frame.decode_index,
            NOPTS if pts is None else pts,
            frame.poc,
            ord(t[0]) if isinstance(t, str) else int(t),
            bool(frame.key),
            frame.pkt_bytes,
            int(frame.flags),
        ))
        self.n += 1
        if self.n % META_CHUNK == 0:
            self._flush_meta()

    def _flush_staged(self, s: _Series) -> None:
        """Write the chunk a multi-frame-chunk dataset has gathered (at the end of a file, partial)."""
        count = self._stager.count(s.stage)
        if not count:
            return
        self._ensure_capacity(s.start + count)
        if self._direct:
            self._write_chunk(s, self._stager.pack(s.stage, s.lzf))
        else:
            block = np.frombuffer(self._stager.take(s.stage), s.dtype).reshape(count, *s.shape)
            if not self.skip_zero or block.any():
                s.dset[s.start : s.start + count] = block
        s.start += s.k

    def _write_chunk(self, s: _Series, packed: tuple[Any, int] | None) -> None:
        """Write the chunk of ``s`` that starts at frame ``s.start`` (direct chunk write).

        ``packed``: None when all zero (the chunk is not written and reads as the fill value 0),
        else (data, filter mask): LZF bytes, or the raw chunk with the LZF filter marked skipped
        (mask bit 0) when LZF would not shrink it (HDF5 allows that per chunk; h5py reads both).
        """
        self._ensure_capacity(s.start + 1)
        offset = (s.start, *s.origin)
        if packed is not None:
            _write_direct_chunk(s.dsid, offset, packed[0], packed[1])
        elif not self.skip_zero:  # raw zeros, filter skipped
            _write_direct_chunk(s.dsid, offset, np.zeros((s.k, *s.shape), s.dtype), int(s.lzf))

    def _flush_batch(self, s: _Series) -> None:
        """Write the batch of frames a one-frame-chunk dataset keeps under gzip (through h5py).

        Frames whose array is all zero (or missing) are not written: their chunk stays unallocated
        and reads as the fill value 0 (saves compression time and space on sparse data).
        """
        pending = s.pending
        count = len(pending)
        if not count:
            return
        self._ensure_capacity(s.start + count)
        if self.skip_zero:
            nz = np.array([a is not None and bool(a.any()) for a in pending])
        else:
            nz = np.ones(count, bool)
        edges = np.flatnonzero(np.diff(np.concatenate(([0], nz.view(np.int8), [0]))))
        zero = np.zeros(s.shape, s.dtype)
        for a, b in zip(edges[::2], edges[1::2], strict=True):
            s.dset[s.start + a : s.start + b] = np.stack([zero if x is None else x for x in pending[a:b]])
        s.start += count
        s.pending = []

    def _ensure_capacity(self, size: int) -> None:
        """Grow every dataset to at least ``size`` frames (geometric steps: few resizes)."""
        if size <= self._cap:
            return
        self._resize(max(size, self._cap + self._cap // 2, 64))

    def _resize(self, size: int) -> None:
        """Set the frame count of every dataset."""
        for dsid in self._meta_ids.values():
            dsid.set_extent((size,))
        for s in self._series.values():
            s.dsid.set_extent((size, *s.shape))
        self._cap = size

    def _flush_meta(self) -> None:
        """Write the pending per-frame metadata (whole or partial chunk of META_CHUNK frames)."""
        assert self._h5 is not None
        start = ((self.n - 1) // META_CHUNK) * META_CHUNK if self.n else 0
        count = self.n - start
        if count <= 0:
            return
        self._ensure_capacity(self.n)
        rows = self._meta_rows  # the frames of this chunk
        assert len(rows) == count
        if count == META_CHUNK:
            self._meta_rows = []
        for (k, dt), values in zip(FRAME_META.items(), zip(*rows, strict=True), strict=True):
            dsid = self._meta_ids[k]
            buf = np.zeros(META_CHUNK, dt)
            buf[:count] = values
            if not self._direct:
                h5py.Dataset(dsid)[start : self.n] = buf[:count]
                continue
            # A whole chunk written directly (the part past the last frame lies outside the dataset).
            packed = _pack_frames([buf], buf.nbytes, 1, self.compression == "lzf", buf.itemsize)
            if packed is None:
                packed = (buf, int(self.compression == "lzf"))  # all zero: raw, filter skipped
            _write_direct_chunk(dsid, (start,), packed[0], packed[1])

    # ------------------------------------------------------------------ finishing
    def close(self) -> str:
        """Flush, trim to the frames written and atomically move the file into place; returns the path."""
        if self.closed:
            return self.path
        if self._h5 is None:
            self.open()
        try:
            assert self._h5 is not None
            if self._attrs is None:
                raise StoreError(f"{self.path}: no root attributes; pass attrs or call set_attrs() first")
            self._write_attrs()
            # Trim (or grow) to the frames written before the last, partial chunks are written: every
            # chunk written so far lies inside the final extent, so HDF5 rewrites none of them.
            if self._cap != self.n:
                self._resize(self.n)
            for s in self._staged:
                self._flush_staged(s)
            for s in self._single:
                self._flush_batch(s)
            if self.n % META_CHUNK:
                self._flush_meta()
            _set_attr(self._h5, "nb_frames", self.n)
            self._h5.close()
            self._h5 = None
            if os.path.lexists(self.path) and not self.overwrite:
                raise StoreError(f"{self.path}: appeared while extracting; pass --overwrite to replace it")
            check_replaceable(self.path)
            if self.before_rename is not None:
                self.before_rename()
            assert self.tmp is not None
            os.chmod(self.tmp, new_file_mode())
            os.replace(self.tmp, self.path)
            self.tmp = None
            self.closed = True
        except _WRITE_ERRORS as exc:
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
        self._series.clear()
        self._staged.clear()
        self._single.clear()
        self._meta_ids.clear()
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
    """An :class:`H5Writer` fed by a background thread.

    ``append()`` only hands the frame over; the thread runs ``H5Writer.append`` on the frames in
    order: chunk staging and LZF compression (``pycodec._core``, without the GIL) and the HDF5 chunk
    writes. The decoding thread (``pycodec._core`` releases the GIL while decoding) thus overlaps
    with compression and writing on a second CPU. A writer made with ``defer_open`` creates its
    file in the thread too, while the first frames decode. Frames are handed over in small batches
    (about ``hand_bytes`` of arrays), which keeps the threads' wake-ups and hand-offs of the GIL
    few. ``append()`` blocks while ``depth`` frames or ``max_bytes`` of arrays are waiting or being
    written (one frame always fits), so memory stays bounded. ``on_frame(frame)``, if given, is
    called by the thread after each frame is written (e.g. statistics, off the decoding thread).

    The file is identical to the one H5Writer alone writes, with the same guarantees: the
    temporary file is renamed by ``close()`` and nothing is left behind on failure. A failure in the
    thread (a full disk, a frame of another size) is raised, as the same exception (a one-line
    StoreError), by the next ``append()`` or by ``close()``. Only the thread touches the H5Writer
    (and h5py) until it has stopped.
    """

    def __init__(
        self,
        writer: H5Writer,
        depth: int = 256,
        max_bytes: int = 64 << 20,
        hand_bytes: int = 1 << 20,
        on_frame: Callable[[Any], None] | None = None,
    ) -> None:
        self.writer = writer
        self.path = writer.path
        self.depth, self.max_bytes, self.hand_bytes = max(1, depth), max_bytes, hand_bytes
        self._on_frame = on_frame
        writer.yield_gil = True
        self._q: queue.SimpleQueue[Any] = queue.SimpleQueue()  # batches of (frame, nbytes)
        self._lock = threading.Lock()  # guards the counters below
        self._room = threading.Condition(self._lock)
        self._pending = 0  # frames accepted and not yet written (in the batch, queued, being written)
        self._pending_bytes = 0
        self._waiting = False  # append() waits for room
        self._batch: list[tuple[Any, int]] = []  # frames not handed over yet
        self._batch_bytes = 0
        self._exc: BaseException | None = None
        self._discard = False  # abort(): drop what is still queued
        self._stopped = False
        self._accepted = 0
        nb = writer.nb_frames
        self._hand_each = nb - 16 if nb > 0 else 1 << 62  # frames after which each frame is handed over
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
        try:
            self.writer.open()  # a writer made with defer_open creates its file here, while frames decode
        except BaseException as exc:  # noqa: BLE001 - re-raised in the calling thread
            self._exc = exc
        while True:
            batch = self._q.get()
            if batch is _STOP:
                return
            nbytes = 0
            count = len(batch)
            batch.reverse()
            while batch:  # each frame is dropped once written: its export buffer goes back to the decoder
                frame, nb = batch.pop()
                nbytes += nb
                if self._exc is None and not self._discard:
                    try:
                        self.writer.append(frame)  # aborts the writer (temporary file removed) on failure
                        if self._on_frame is not None:
                            self._on_frame(frame)
                    except BaseException as exc:  # noqa: BLE001 - re-raised in the calling thread
                        self._exc = exc
                del frame
            del batch
            with self._lock:
                self._pending -= count
                self._pending_bytes -= nbytes
                if self._waiting:
                    self._room.notify_all()

    def _hand(self) -> None:
        """Queue the frames not handed over yet."""
        if self._batch:
            self._q.put(self._batch)
            self._batch = []
            self._batch_bytes = 0

    def append(self, frame: Any) -> None:
        """Hand one frame to the thread; raises the thread's failure, if any."""
        if self._exc is not None:
            raise self._exc
        if self._stopped:
            raise StoreError(f"{self.path}: writer is closed; open a new H5Writer")
        nbytes = 0
        for a in frame.arrays.values():
            nbytes += getattr(a, "nbytes", 0)
        # The counters only drop behind our back (the thread), so a stale read errs on the safe side.
        if self._pending and (self._pending >= self.depth or self._pending_bytes + nbytes > self.max_bytes):
            self._hand()
            with self._room:
                while self._pending and (
                    self._pending >= self.depth or self._pending_bytes + nbytes > self.max_bytes
                ):
                    if self._exc is not None:
                        raise self._exc
                    self._waiting = True
                    self._room.wait()
                self._waiting = False
        with self._lock:
            self._pending += 1
            self._pending_bytes += nbytes
        self._batch.append((frame, nbytes))
        self._batch_bytes += nbytes
        self._accepted += 1
        # Near the expected end, every frame goes at once: what the thread has left to do when the
        # last frame arrives (and the caller waits for in close()) stays small.
        if self._batch_bytes >= self.hand_bytes or self._accepted >= self._hand_each:
            self._hand()

    def set_attrs(self, attrs: Mapping[str, Any], nb_frames: int | None = None) -> None:
        """:meth:`H5Writer.set_attrs`, before the first frame (the thread reads them with it)."""
        if self._accepted:
            raise StoreError(f"{self.path}: set_attrs() after the first frame; set them before")
        self.writer.set_attrs(attrs, nb_frames)
        nb = self.writer.nb_frames
        self._hand_each = nb - 16 if nb > 0 else 1 << 62

    def _stop(self) -> None:
        """Let the thread finish what is queued and wait for it."""
        if self._thread.is_alive():
            self._hand()
            self._q.put(_STOP)
            self._thread.join()
        self._stopped = True

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
        self._batch = []
        with contextlib.suppress(queue.Empty):
            while True:
                item = self._q.get_nowait()
                if item is _STOP:
                    self._q.put(_STOP)
                    break
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


# What h5py raises on a damaged file, depending on which structure the damage hit.
READ_ERRORS = (
    OSError, KeyError, ValueError, TypeError, IndexError, RuntimeError, UnicodeDecodeError, AttributeError
)


def damaged(path: str | os.PathLike, exc: BaseException) -> StoreError:
    """The one-line error for an extracted file that h5py cannot read (``exc``)."""
    reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return StoreError(f"{os.fspath(path)}: cannot be read ({reason}); the file is damaged, extract the video again")


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
        try:
            schema = _attr(self.h5.attrs.get("schema"))
            if schema != SCHEMA:
                raise StoreError(
                    f"{self.path}: schema is {schema!r}, expected {SCHEMA!r}; "
                    "re-extract it with `pycodec extract`"
                )
            self.attrs: dict[str, Any] = {k: _attr(v) for k, v in self.h5.attrs.items()}
            # the per-frame metadata every reader relies on: present, one value per frame
            lengths = {self.h5[f"frame/{k}"].shape[:1] for k in FRAME_META}
            if len(lengths) != 1:
                raise StoreError(
                    f"{self.path}: the frame/ datasets have different lengths; the file is damaged, "
                    "extract the video again"
                )
        except StoreError:
            self.h5.close()
            raise
        except READ_ERRORS as exc:
            self.h5.close()
            raise damaged(self.path, exc) from exc

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


def same_file(a: str, b: str) -> bool:
    """Whether paths ``a`` and ``b`` name the same file (through links too); False if either is missing."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)
