"""Speech features: the audio track at 16 kHz mono, and MFCCs aligned to video frames.

These are the features ``make dataset`` stores as ``audio/mfcc`` and ``pycodec restore`` feeds the
models, so both sides import them from here.

MFCC (docs/dataset.md): 25 ms Hamming windows every 10 ms, pre-emphasis 0.97, 512-point FFT power
spectrum, 26 triangular mel filters (0-8 kHz, HTK mel scale, filter edges on FFT bins), log,
orthonormal DCT-II, 13 cepstra, sinusoidal lifter 22, c0 replaced by the log frame energy: the
conventions of ``python_speech_features``, which computes them (framing, window, power spectrum,
filterbank, lifter). One deliberate difference from its ``mfcc()``: filterbank energies are floored
at the float64 epsilon before the log (``mfcc()`` only replaces exact zeros), so the features of
near-digital-silence stay bounded, as in every shard built so far (measured: within 1.3e-12 of the
shards' own numpy implementation on 201 s of real speech; ``psf.mfcc`` differs by up to 2.1 on the
two vectors of 20,113 whose quietest band falls below epsilon).

Per video frame t (time tau_t after the first frame), the ``steps_per_frame`` = 4 MFCC vectors
whose window centres are nearest around tau_t (40 ms), so ``audio/mfcc`` is (N, 4, 13) whatever the
frame rate; indices outside the audio repeat the first/last vector.

Needs ``python_speech_features`` and ``scipy`` for MFCC and PyAV for reading audio
(``pip install .[models]``); they are imported on first use.
"""

from __future__ import annotations

import os
import wave
from dataclasses import asdict, dataclass

import numpy as np

from ._optional import require

SAMPLE_RATE = 16000
# Below this level (dBFS, mean power) an audio track counts as silent: no speech to learn from.
AUDIBLE_DB = -50.0
EPS = float(np.finfo(np.float64).eps)  # floor of filterbank and frame energies before the log


@dataclass(frozen=True)
class MfccSettings:
    """MFCC parameters; :meth:`attrs` is what shards record next to ``audio/mfcc``."""

    sample_rate: int = SAMPLE_RATE
    win: int = 400          # samples (25 ms)
    hop: int = 160          # samples (10 ms)
    n_fft: int = 512
    n_mels: int = 26
    n_mfcc: int = 13
    preemph: float = 0.97
    lifter: int = 22
    steps_per_frame: int = 4

    def attrs(self) -> dict[str, int | float | str]:
        """The settings plus the fixed choices, as HDF5 attributes."""
        return {**asdict(self), "window": "hamming", "c0": "log frame energy", "mel": "htk, 0 Hz to sr/2"}


def read_audio(path: str | os.PathLike, start: float, sample_rate: int = SAMPLE_RATE) -> np.ndarray | None:
    """The first audio stream of ``path`` as float32 mono at ``sample_rate``, sample 0 at time
    ``start`` (seconds, the first video frame's time): earlier audio is dropped, a late start is
    padded with silence.  None when the file has no audio stream."""
    av = require("av", "reading the audio track")

    with av.open(os.fspath(path)) as c:
        if not c.streams.audio:
            return None
        st = c.streams.audio[0]
        res = av.AudioResampler(format="s16", layout="mono", rate=sample_rate)
        chunks: list[np.ndarray] = []
        first: float | None = None
        for packet in c.demux(st):
            try:
                frames = packet.decode()
            except (av.error.FFmpegError, ValueError):
                # a damaged packet: keep the timing with silence of its duration
                if first is not None and packet.duration and packet.time_base:
                    chunks.append(np.zeros(round(packet.duration * packet.time_base * sample_rate), np.int16))
                continue
            for frame in frames:
                if first is None and frame.pts is not None and frame.time_base is not None:
                    first = float(frame.pts * frame.time_base)
                for r in res.resample(frame):
                    chunks.append(r.to_ndarray().reshape(-1))
        if first is not None:
            for r in res.resample(None):
                chunks.append(r.to_ndarray().reshape(-1))
    if not chunks:
        return np.zeros(0, np.float32)
    x = np.concatenate(chunks).astype(np.float32) / 32768.0
    shift = round(((first if first is not None else 0.0) - start) * sample_rate)
    if shift > 0:
        x = np.concatenate([np.zeros(shift, np.float32), x])
    elif shift < 0:
        x = x[-shift:]
    return x


def write_wav(path: str | os.PathLike, x: np.ndarray, sample_rate: int = SAMPLE_RATE) -> None:
    """16-bit PCM mono WAV."""
    pcm = np.clip(np.round(x * 32768.0), -32768, 32767).astype("<i2")
    with wave.open(os.fspath(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes(pcm.tobytes())


def read_wav(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """A 16-bit mono PCM WAV as float32 samples in [-1, 1) and its sample rate."""
    with wave.open(os.fspath(path), "rb") as w:
        if w.getnchannels() != 1 or w.getsampwidth() != 2:
            raise ValueError(f"{path}: expected 16-bit mono PCM")
        x = np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.float32) / 32768.0
        return x, w.getframerate()


def mfcc(x: np.ndarray, s: MfccSettings = MfccSettings()) -> np.ndarray:
    """MFCC vectors (M, n_mfcc) float32; vector j covers samples [j*hop, j*hop+win) (zero-padded).

    ``python_speech_features`` frames, windows and filters the signal (in float64); the log floors
    the energies at :data:`EPS` (module docstring)."""
    psf = require("python_speech_features", "MFCC speech features")
    fft = require("scipy.fft", "MFCC speech features")
    x = np.asarray(x, np.float64).reshape(-1)
    if len(x) == 0:
        return np.zeros((0, s.n_mfcc), np.float32)
    sr = s.sample_rate
    bands, energy = psf.fbank(x, sr, winlen=s.win / sr, winstep=s.hop / sr, nfilt=s.n_mels, nfft=s.n_fft,
                              lowfreq=0, highfreq=sr / 2, preemph=s.preemph, winfunc=np.hamming)
    c = fft.dct(np.log(np.maximum(bands, EPS)), type=2, axis=1, norm="ortho")[:, : s.n_mfcc]
    c = psf.lifter(c, s.lifter)
    c[:, 0] = np.log(np.maximum(energy, EPS))
    return c.astype(np.float32)


def level_db(x: np.ndarray) -> float:
    """Mean power of ``x`` (samples in [-1, 1]) in dBFS; -120 for digital silence or no samples."""
    x = np.asarray(x, np.float64)
    p = float(np.mean(x * x)) if len(x) else 0.0
    return max(-120.0, 10.0 * float(np.log10(p))) if p > 0 else -120.0


def frame_steps(times: np.ndarray, n_steps: int, s: MfccSettings = MfccSettings()) -> np.ndarray:
    """(N, steps_per_frame) MFCC indices for video frames at ``times`` (seconds from audio sample 0):
    consecutive steps whose window centres are closest around each time, clipped to [0, n_steps)."""
    k = s.steps_per_frame
    centre0 = (s.win / 2) / s.sample_rate  # centre of step 0, seconds
    hop = s.hop / s.sample_rate
    j0 = np.floor((np.asarray(times) - centre0) / hop - (k - 1) / 2 + 0.5).astype(np.int64)
    return np.clip(j0[:, None] + np.arange(k)[None, :], 0, max(n_steps - 1, 0))


def frame_mfcc(x: np.ndarray, times: np.ndarray, s: MfccSettings = MfccSettings()) -> np.ndarray:
    """(N, steps_per_frame, n_mfcc) float32: the MFCCs of each video frame."""
    c = mfcc(x, s)
    if len(c) == 0:  # no samples at all: the features of silence
        c = mfcc(np.zeros(s.win, np.float32), s)
    return c[frame_steps(times, len(c), s)]


def silence(times: np.ndarray, fps: float, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Digital silence as long as video frames at ``times`` (seconds from the first) last."""
    times = np.asarray(times, np.float64)
    seconds = (float(times[-1]) + 1.0 / fps) if len(times) else 0.0
    return np.zeros(round(seconds * sample_rate), np.float32)


def video_mfcc(path: str | os.PathLike, times: np.ndarray, fps: float,
               s: MfccSettings = MfccSettings()) -> tuple[np.ndarray, str]:
    """MFCCs (N, 4, 13) of the video frames at ``times`` (seconds, first frame's time first) from
    ``path``'s audio track, as ``make dataset`` computes them, and where they came from: "stream",
    or "silence" when there is no audio stream or it decodes to nothing (features of silence, as
    the shards of such clips hold)."""
    times = np.asarray(times, np.float64)
    x = read_audio(path, start=float(times[0]) if len(times) else 0.0, sample_rate=s.sample_rate)
    source = "stream" if x is not None and len(x) else "silence"
    if source == "silence":
        x = silence(times - (times[0] if len(times) else 0.0), fps, s.sample_rate)
    rel = times - (times[0] if len(times) else 0.0)
    return frame_mfcc(x, rel, s), source
