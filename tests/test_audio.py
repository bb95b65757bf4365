"""pycodec.audio: MFCCs computed by python_speech_features must equal the features every existing
shard holds (written by pycodec's own numpy implementation, kept below as the oracle), agree with
the library's own ``mfcc()`` wherever its one difference (the epsilon floor) does not apply, and
line up with video frames; audio of a clip, or silence when it has none."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from pycodec import audio

TOL = 1e-4  # |psf-based - shard implementation|; measured 1.3e-12 on 201 s of real speech


# ---------------------------------------------------------------------- the oracle


def _hz_to_mel(f):
    return 2595.0 * np.log10(1.0 + np.asarray(f) / 700.0)


def _mel_to_hz(m):
    return 700.0 * (10.0 ** (m / 2595.0) - 1.0)


SETTINGS = audio.MfccSettings()


def shard_mfcc(x: np.ndarray, s: audio.MfccSettings = SETTINGS) -> np.ndarray:
    """pycodec's numpy MFCC that built the shards before python_speech_features took over (an
    independent implementation: framing, window, FFT, filterbank, DCT and lifter written out)."""
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
    edges = _mel_to_hz(np.linspace(_hz_to_mel(0.0), _hz_to_mel(s.sample_rate / 2), s.n_mels + 2))
    bins = np.floor((s.n_fft + 1) * edges / s.sample_rate).astype(int)
    fb = np.zeros((s.n_mels, s.n_fft // 2 + 1))
    for j in range(s.n_mels):
        lo, c, hi = bins[j], bins[j + 1], bins[j + 2]
        for k in range(lo, c):
            fb[j, k] = (k - lo) / (c - lo)
        for k in range(c, hi):
            fb[j, k] = (hi - k) / (hi - c)
    energy = np.maximum(power.sum(1), np.finfo(float).eps)
    logmel = np.log(np.maximum(power @ fb.T, np.finfo(float).eps))
    n = s.n_mels
    dct = np.cos(np.pi * np.outer(np.arange(s.n_mfcc), 2 * np.arange(n) + 1) / (2 * n)) * np.sqrt(2.0 / n)
    dct[0] /= np.sqrt(2.0)
    c = logmel @ dct.T
    c *= 1 + (s.lifter / 2) * np.sin(np.pi * np.arange(s.n_mfcc) / s.lifter)
    c[:, 0] = np.log(energy)
    return c.astype(np.float32)


def _signals() -> dict[str, np.ndarray]:
    from pipelines.synthetic import bursts_audio

    rng = np.random.default_rng(0)
    t = np.arange(16000 * 2) / 16000
    quiet = np.zeros(16000, np.float32)
    quiet[::997] = 1 / 32768  # a few least-significant bits: some mel bands fall below epsilon
    return {"noise": rng.normal(0, 0.1, t.size).astype(np.float32),
            "chirp": (0.3 * np.sin(2 * np.pi * (200 + 900 * t) * t)).astype(np.float32),
            "speech-like": bursts_audio(2.0, [(0.3, 0.9), (1.2, 1.6)], 16000)[0],
            "near-silence": quiet, "silence": np.zeros(8000, np.float32),
            "short": rng.normal(0, 0.1, 250).astype(np.float32)}


class TestMfcc:
    @pytest.mark.parametrize("name", list(_signals()))
    def test_equals_the_shards_features(self, name):
        x = _signals()[name]
        ours, ref = audio.mfcc(x), shard_mfcc(x)
        assert ours.dtype == np.float32 and ours.shape == ref.shape
        np.testing.assert_allclose(ours, ref, rtol=0, atol=TOL)

    def test_matches_python_speech_features(self):
        import python_speech_features as psf  # the library's own mfcc(): equal where no band is below eps

        for name in ("noise", "chirp", "speech-like"):
            x = _signals()[name]
            ref = psf.mfcc(x.astype(np.float64), 16000, winfunc=np.hamming)
            assert audio.mfcc(x).shape == ref.shape
            np.testing.assert_allclose(audio.mfcc(x), ref, rtol=1e-4, atol=1e-3, err_msg=name)

    def test_near_silence_is_floored_as_in_the_shards(self):
        import python_speech_features as psf

        x = _signals()["near-silence"]
        bands, _ = psf.fbank(x.astype(np.float64), 16000, winfunc=np.hamming)
        below = (bands < audio.EPS).any(1)
        assert below.any()  # the case the floor exists for: psf.mfcc keeps those bands' raw log
        lib = psf.mfcc(x.astype(np.float64), 16000, winfunc=np.hamming)
        assert np.abs(lib[below] - shard_mfcc(x)[below]).max() > 0.1
        np.testing.assert_allclose(audio.mfcc(x)[below], shard_mfcc(x)[below], atol=TOL)
        assert audio.mfcc(x).min() >= np.log(audio.EPS) * 1.5  # bounded

    def test_frame_alignment_follows_a_burst(self):
        # a tone between 1.00 s and 1.40 s: the frames whose 40 ms window lies inside are loud
        sr, fps = 16000, 25
        x = np.random.default_rng(1).normal(0, 1e-3, 3 * sr)
        x[sr:int(1.4 * sr)] += 0.3 * np.sin(2 * np.pi * 440 * np.arange(int(0.4 * sr)) / sr)
        feats = audio.frame_mfcc(x, np.arange(75) / fps)
        assert feats.shape == (75, 4, 13)
        loud = feats[:, :, 0].min(1) > -4
        assert np.flatnonzero(loud).tolist() == list(range(26, 35))

    def test_steps_clip_at_the_ends(self):
        idx = audio.frame_steps(np.array([0.0, 10.0]), 50)
        # t = 0: the 4 steps centred on 0 s are -3..0 (centres -17.5..12.5 ms), clipped to step 0
        assert idx[0].tolist() == [0, 0, 0, 0] and idx[1].tolist() == [49] * 4
        assert audio.frame_steps(np.array([0.1]), 50)[0].tolist() == [7, 8, 9, 10]  # centres 82.5..112.5 ms

    def test_no_samples_give_the_features_of_silence(self):
        feats = audio.frame_mfcc(np.zeros(0, np.float32), np.arange(3) / 25)
        assert feats.shape == (3, 4, 13)
        np.testing.assert_array_equal(feats[0, 0], audio.mfcc(np.zeros(400, np.float32))[0])

    def test_wav_roundtrip(self, tmp_path):
        x = np.linspace(-0.5, 0.5, 1000).astype(np.float32)
        audio.write_wav(str(tmp_path / "a.wav"), x)
        y, sr = audio.read_wav(str(tmp_path / "a.wav"))
        assert sr == 16000 and np.abs(y - x).max() <= 1 / 32768


class TestVideoMfcc:
    def test_clip_with_and_without_sound(self, tmp_path):
        import av

        from pipelines.synthetic import write_clip
        from pycodec.samples import TalkingHead

        scene = TalkingHead(64, 64, 25)
        frames = [scene.frame(t) for t in range(10)]
        from pipelines.synthetic import bursts_audio

        loud = write_clip(tmp_path / "a.mp4", frames, 25, bursts_audio(0.4, [(0.1, 0.3)]))
        mute = write_clip(tmp_path / "b.mp4", frames, 25, None)
        times = np.arange(10) / 25
        feats, where = audio.video_mfcc(loud, times, 25.0)
        assert where == "stream" and feats.shape == (10, 4, 13)
        np.testing.assert_array_equal(feats, audio.frame_mfcc(audio.read_audio(loud, 0.0), times))
        with av.open(str(loud)) as c:
            assert c.streams.audio[0].rate == 44100  # resampled to 16 kHz mono on the way
        quiet, where = audio.video_mfcc(mute, times, 25.0)
        assert where == "silence"
        np.testing.assert_array_equal(quiet, audio.frame_mfcc(np.zeros(6400, np.float32), times))
        assert audio.read_audio(mute, 0.0) is None
        assert len(audio.silence(times, Fraction(25))) == 6400

    def test_missing_library_is_named(self, monkeypatch):
        import sys

        from pycodec._optional import MissingDependency

        monkeypatch.setitem(sys.modules, "python_speech_features", None)
        with pytest.raises(MissingDependency, match=r"python_speech_features.*pip install \.\[models\]"):
            audio.mfcc(np.zeros(1000, np.float32))
