"""Reading frames: ``open()``, ``info()``, ``VideoReader`` and ``Frame`` over ``pycodec._core``."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Self

import numpy as np

from . import _core
from .errors import InputError
from .fields import CODEC_EXTRAS, FrameFlag, export_bits, groups_for_codec, parse_fields

PathLike = str | os.PathLike[str]
FramesArg = slice | tuple[int | None, int | None] | None


@dataclass(slots=True)
class Frame:
    """One output frame in display order: metadata plus ``arrays`` keyed by schema path."""

    index: int
    decode_index: int
    pts: int | None
    poc: int
    type: str
    key: bool
    pkt_bytes: int
    flags: FrameFlag
    arrays: dict[str, np.ndarray] = field(default_factory=dict)

    def __getitem__(self, name: str) -> Any:
        """``frame["decoded/y"]`` is ``frame.arrays["decoded/y"]``; ``frame["frame/poc"]`` the metadata."""
        if name.startswith("frame/"):
            key = name[6:]
            if key in _META:
                return getattr(self, key)
        return self.arrays[name]

    def __contains__(self, name: object) -> bool:
        return name in self.arrays or (isinstance(name, str) and name.startswith("frame/") and name[6:] in _META)


_META = ("decode_index", "pts", "poc", "type", "key", "pkt_bytes", "flags")


def _input_error(path: str, exc: BaseException) -> InputError:
    """A one-line InputError for an OSError/ValueError raised while opening or reading ``path``."""
    if isinstance(exc, FileNotFoundError):
        what = "file not found; check the path"
    elif isinstance(exc, IsADirectoryError):
        what = "is a directory; pass a video file"
    elif isinstance(exc, PermissionError):
        what = "permission denied; check the file's permissions"
    elif isinstance(exc, OSError):
        what = f"cannot read ({exc.strerror or exc}); check that the file is readable"
    else:
        what = " ".join(str(exc).split()) or type(exc).__name__
        if ";" not in what:
            what += "; check the input file"
    return InputError(f"{path}: {what}")


_SPECIAL_FILES = (
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def _check_file(path: str) -> None:
    """InputError unless ``path`` is a non-empty regular file. FIFOs and devices are refused before
    FFmpeg opens them: opening a FIFO waits for a writer, a device reads as empty or never ends."""
    try:
        mode = os.stat(path).st_mode
        if stat.S_ISDIR(mode):
            raise InputError(f"{path}: is a directory; pass a video file")
        if not stat.S_ISREG(mode):
            what = next((name for test, name in _SPECIAL_FILES if test(mode)), "a special file")
            raise InputError(
                f"{path}: is {what}, not a video file; pycodec reads regular files: save the stream to a "
                "file first"
            )
        if os.path.getsize(path) == 0:
            raise InputError(f"{path}: file is empty; pass a complete video file")
    except OSError as exc:
        raise _input_error(path, exc) from None


def _open_core(path: str, export_flags: int, want_decoded: bool, groups: list[str], share: bool = False,
               ahead: int = 0) -> Any:
    """Open a ``_core.Decoder``, turning input problems into InputError."""
    _check_file(path)
    try:
        return _core.Decoder(path, export_flags, want_decoded, groups, True, share, ahead)
    except (OSError, ValueError) as exc:
        raise _input_error(path, exc) from None


def _frame_range(frames: FramesArg) -> tuple[int, int | None, int]:
    """(start, stop, step) over display indices from a slice or a (start, stop) pair."""
    if frames is None:
        return 0, None, 1
    if isinstance(frames, slice):
        start, stop, step = frames.start, frames.stop, frames.step
    elif isinstance(frames, tuple) and len(frames) == 2:
        (start, stop), step = frames, None
    else:
        raise TypeError(f"frames must be a slice or a (start, stop) pair, not {frames!r}")
    start = 0 if start is None else int(start)
    step = 1 if step is None else int(step)
    stop = None if stop is None else int(stop)
    if start < 0 or (stop is not None and stop < 0) or step < 1:
        raise ValueError(f"frames={frames!r}: indices must be >= 0 and the step >= 1")
    return start, stop, step


class VideoReader:
    """Iterator of :class:`Frame` in display order; a context manager that closes the decoder."""

    def __init__(self, path: PathLike, fields: str | Iterable[str] | None = None, frames: FramesArg = None,
                 copy: bool = True, ahead: int = 0) -> None:
        self.path = os.fspath(path)
        self.copy = copy
        if int(ahead) < 0:
            raise ValueError(f"ahead={ahead!r}: give a number of frames >= 0")
        self.fields: tuple[str, ...] = parse_fields(fields)
        self._start, self._stop, self._step = _frame_range(frames)
        self.export_flags = export_bits(self.fields)
        self._dec: Any = _open_core(self.path, self.export_flags, "decoded" in self.fields, list(self.fields),
                                    share=not copy, ahead=int(ahead))
        if not self._dec.decodable:  # as `pycodec extract` says; info() still describes such files
            self.close()
            raise InputError(
                f"{self.path}: no frame could be decoded (truncated or corrupted stream); "
                "check the file with `pycodec info` or re-encode it"
            )
        self.info: dict[str, Any] = {**self._dec.info, "source": self.path}
        codec = str(self.info.get("codec", ""))
        if fields is not None and fields != "all":
            wrong = [g for g in self.fields if CODEC_EXTRAS.get(g, codec) != codec]
            if wrong:
                self.close()
                raise InputError(
                    f"{self.path}: field group {wrong[0]!r} holds {CODEC_EXTRAS[wrong[0]]} extras but the "
                    f"video is {codec}; leave it out of fields"
                )
        self.fields = groups_for_codec(self.fields, codec)
        self._next_index = 0  # display index of the next frame the decoder gives

    def __iter__(self) -> Iterator[Frame]:
        return self

    def __next__(self) -> Frame:
        dec = self._dec
        while dec is not None:
            i = self._next_index
            if self._stop is not None and i >= self._stop:
                break
            try:
                if i < self._start or (i - self._start) % self._step:
                    got = dec.skip()
                    self._next_index += 1
                    if got:
                        continue
                    break
                d = dec.read()
            except ValueError as exc:
                self.close()
                raise _input_error(self.path, exc) from None
            if d is None:
                break
            self._next_index += 1
            return Frame(i, d["decode_index"], d["pts"], d["poc"], d["type"], d["key"], d["pkt_bytes"],
                         FrameFlag(d["flags"]), d["arrays"])
        self.close()
        raise StopIteration

    def close(self) -> None:
        """Free the decoder (idempotent)."""
        if self._dec is not None:
            self._dec.close()
            self._dec = None

    @property
    def closed(self) -> bool:
        """Whether the decoder has been freed."""
        return self._dec is None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"VideoReader({self.path!r}, fields={','.join(self.fields)!r})"


def open(path: PathLike, fields: str | Iterable[str] | None = None, frames: FramesArg = None,
         copy: bool = True, ahead: int = 0) -> VideoReader:
    """Open ``path`` for reading ``fields`` (groups; None = all) of the ``frames`` (display indices).

    ``copy=False``: exported arrays that the decoder laid out as returned (block maps, codec extras,
    uncropped planes) are read-only views of the frame's export buffer instead of copies (faster,
    which ``pycodec extract`` uses). Any such array keeps that whole buffer (every exported field of
    its frame) alive, so keep copies, not views, of what you hold on to across many frames.

    ``ahead``: decode up to that many frames ahead of the caller in a thread of pycodec's own (C++,
    without the GIL), so that decoding runs on a second CPU while the caller works on the frames
    (``pycodec extract`` compresses and writes them). The file is still decoded by one thread, in
    order: the frames are the same. Up to ``ahead`` decoded frames (and their exported data) wait
    in memory. 0: decode in the caller's thread.
    """
    return VideoReader(path, fields=fields, frames=frames, copy=copy, ahead=ahead)


def info(path: PathLike) -> dict[str, Any]:
    """Stream information of ``path`` (codec, sizes, crop, format, rates, counts) plus ``source``."""
    p = os.fspath(path)
    dec = _open_core(p, 0, False, ["frame"])
    try:
        return {**dec.info, "source": p}
    finally:
        dec.close()
