"""Speech features: the audio track at 16 kHz mono, and MFCCs aligned to video frames.

MFCC (documented in docs/dataset.md): 25 ms Hamming windows every 10 ms, pre-emphasis 0.97, 512-point
FFT power spectrum, 26 triangular mel filters (0-8 kHz, HTK mel scale, filter edges on FFT bins),
log, orthonormal DCT-II, 13 cepstra, sinusoidal lifter 22, c0 replaced by the log frame energy.
Per video frame t (time tau_t after the first frame), the ``STEPS`` = 4 MFCC vectors whose window
centres are nearest around tau_t (40 ms), so ``audio/mfcc`` is (N, 4, 13) whatever the frame rate;
indices outside the audio repeat the first/last vector.
"""

from __future__ import annotations

import argparse
import sys
import wave
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

SAMPLE_RATE = 16000


@dataclass(frozen=True)
class MfccSettings:
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
        return {**asdict(self), "window": "hamming", "c0": "log frame energy", "mel": "htk, 0 Hz to sr/2"}


def read_audio(path: str, start: float, sample_rate: int = SAMPLE_RATE) -> np.ndarray | None:
    """The first audio stream of ``path`` as float32 mono at ``sample_rate``, sample 0 at time
    ``start`` (seconds, the first video frame's time): earlier audio is dropped, a late start is
    padded with silence.  None when the file has no audio stream."""
    import av

    with av.open(path) as c:
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


def write_wav(path: str, x: np.ndarray, sample_rate: int = SAMPLE_RATE) -> None:
    """16-bit PCM mono WAV."""
    pcm = np.clip(np.round(x * 32768.0), -32768, 32767).astype("<i2")
    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes(pcm.tobytes())


def read_wav(path: str) -> tuple[np.ndarray, int]:
    with wave.open(path, "rb") as w:
        if w.getnchannels() != 1 or w.getsampwidth() != 2:
            raise ValueError(f"{path}: expected 16-bit mono PCM")
        x = np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.float32) / 32768.0
        return x, w.getframerate()


def _hz_to_mel(f: np.ndarray | float) -> np.ndarray:
    return 2595.0 * np.log10(1.0 + np.asarray(f) / 700.0)


def _mel_to_hz(m: np.ndarray) -> np.ndarray:
    return 700.0 * (10.0 ** (m / 2595.0) - 1.0)


def mel_filterbank(s: MfccSettings) -> np.ndarray:
    """(n_mels, n_fft//2+1) triangles, edges equally spaced in mel and snapped to FFT bins."""
    edges = _mel_to_hz(np.linspace(_hz_to_mel(0.0), _hz_to_mel(s.sample_rate / 2), s.n_mels + 2))
    bins = np.floor((s.n_fft + 1) * edges / s.sample_rate).astype(int)
    fb = np.zeros((s.n_mels, s.n_fft // 2 + 1))
    for m in range(s.n_mels):
        lo, c, hi = bins[m], bins[m + 1], bins[m + 2]
        for k in range(lo, c):
            fb[m, k] = (k - lo) / (c - lo)
        for k in range(c, hi):
            fb[m, k] = (hi - k) / (hi - c)
    return fb


def mfcc(x: np.ndarray, s: MfccSettings = MfccSettings()) -> np.ndarray:
    """MFCC vectors (M, n_mfcc) float32; frame j covers samples [j*hop, j*hop+win) (zero-padded)."""
    x = np.asarray(x, np.float64)
    if len(x) == 0:
        return np.zeros((0, s.n_mfcc), np.float32)
    y = np.append(x[0], x[1:] - s.preemph * x[:-1])
    m = 1 + int(np.ceil(max(0, len(y) - s.win) / s.hop))
    pad = np.zeros((m - 1) * s.hop + s.win)
    pad[:len(y)] = y
    idx = np.arange(s.win)[None, :] + s.hop * np.arange(m)[:, None]
    frames = pad[idx] * np.hamming(s.win)
    power = np.abs(np.fft.rfft(frames, s.n_fft)) ** 2 / s.n_fft
    energy = np.maximum(power.sum(1), np.finfo(float).eps)
    mel = np.maximum(power @ mel_filterbank(s).T, np.finfo(float).eps)
    logmel = np.log(mel)
    n = s.n_mels
    k = np.arange(n)
    dct = np.cos(np.pi * np.outer(np.arange(s.n_mfcc), 2 * k + 1) / (2 * n)) * np.sqrt(2.0 / n)
    dct[0] /= np.sqrt(2.0)
    c = logmel @ dct.T
    c *= 1 + (s.lifter / 2) * np.sin(np.pi * np.arange(s.n_mfcc) / s.lifter)
    c[:, 0] = np.log(energy)
    return c.astype(np.float32)


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
    return c[frame_steps(times, len(c), s)]


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m pipelines.audio",
                                description="MFCCs of a 16 kHz mono WAV, aligned to video frames at FPS.")
    p.add_argument("wav")
    p.add_argument("out", help=".npy file, (N, 4, 13) float32")
    p.add_argument("--fps", type=float, required=True)
    p.add_argument("--frames", type=int, required=True)
    a = p.parse_args(argv)
    x, sr = read_wav(a.wav)
    if sr != SAMPLE_RATE:
        print(f"error: {a.wav}: sample rate {sr}, expected {SAMPLE_RATE}", file=sys.stderr)
        return 2
    np.save(a.out, frame_mfcc(x, np.arange(a.frames) / a.fps))
    return 0


if __name__ == "__main__":
    sys.exit(main())
