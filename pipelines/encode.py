"""Step 2a: encode the lossless crop with x264 or x265 (PyAV's own builds) at a constant bit rate
with HRD signalling, or at a constant rate factor.

    python -m pipelines.encode crop.mkv out.mp4 --codec h264 --rate 80k [--gop 25] [--preset medium]
    python -m pipelines.encode crop.mkv out.mp4 --codec hevc --crf 32

Rate control (docs/dataset.md): CBR sets bitrate = vbv-maxrate = R and a one-second VBV buffer
(vbv-bufsize = R), x264 with ``nal-hrd=cbr`` (filler data keeps the rate constant), x265 with
``strict-cbr`` and ``hrd``.  I-frames every GOP frames exactly (``min-keyint = keyint = GOP``,
``scenecut=0``), so Keyframes-GAN's reference I-frames come at a known period.  One encoder
thread: the same input and settings always give the same bytes.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from pipelines.common import StepFailure, atomic_path, main_guard, progress

CODECS = {"h264": "libx264", "hevc": "libx265"}


@dataclass(frozen=True)
class EncodeSetting:
    """One encoding of a crop: codec, ``cbr`` at ``value`` kbit/s or ``crf`` at ``value``."""

    codec: str
    mode: str
    value: float
    gop: int = 0  # frames between I-frames; 0: one second (round(fps))
    preset: str = "medium"

    @property
    def name(self) -> str:
        v = f"{self.value:g}"
        return f"{self.codec}-{self.mode}{v}k" if self.mode == "cbr" else f"{self.codec}-{self.mode}{v}"

    @property
    def spec(self) -> str:
        """The command-line form: ``80k`` or ``crf32``."""
        return f"{self.value:g}k" if self.mode == "cbr" else f"crf{self.value:g}"

    def params(self, fps: Fraction) -> tuple[str, dict[str, str]]:
        """The PyAV codec name and stream options."""
        if self.codec not in CODECS:
            raise ValueError(f"codec {self.codec!r}: use one of {', '.join(CODECS)}")
        gop = self.gop or max(1, round(float(fps)))
        if self.mode == "cbr":
            r = f"{self.value:g}"
            rc = [f"bitrate={r}", f"vbv-maxrate={r}", f"vbv-bufsize={r}"]
            rc += ["nal-hrd=cbr"] if self.codec == "h264" else ["strict-cbr=1", "hrd=1"]
        elif self.mode == "crf":
            rc = [f"crf={self.value:g}"]
        else:
            raise ValueError(f"mode {self.mode!r}: use cbr or crf")
        common = [f"keyint={gop}", f"min-keyint={gop}", "scenecut=0"]
        if self.codec == "h264":
            threads = ["threads=1"]
        else:
            threads = ["pools=none", "frame-threads=1", "log-level=error"]
        key = "x264-params" if self.codec == "h264" else "x265-params"
        return CODECS[self.codec], {"preset": self.preset, key: ":".join(rc + common + threads)}


def parse_setting(codec: str, text: str, gop: int = 0, preset: str = "medium") -> EncodeSetting:
    """``"80k"`` -> CBR 80 kbit/s, ``"crf32"`` -> CRF 32."""
    t = text.strip().lower()
    if m := re.fullmatch(r"(\d+(?:\.\d+)?)k", t):
        return EncodeSetting(codec, "cbr", float(m.group(1)), gop, preset)
    if m := re.fullmatch(r"crf(\d+(?:\.\d+)?)", t):
        return EncodeSetting(codec, "crf", float(m.group(1)), gop, preset)
    raise argparse.ArgumentTypeError(f"setting {text!r}: expected a rate such as 80k or a CRF such as crf32")


def encode(src: str, out: str, s: EncodeSetting, quiet: bool = False, label: str = "") -> dict[str, Any]:
    """Encode every frame of ``src`` (the lossless crop) into ``out`` (MP4); return the facts."""
    import av

    with av.open(src) as c:
        st_in = c.streams.video[0]
        st_in.codec_context.thread_count = 1
        fps = Fraction(st_in.average_rate or st_in.guessed_rate).limit_denominator(1001)
        codec, opts = s.params(fps)
        nbytes = n = 0
        bar = progress(st_in.frames or None, f"{label}: {s.name}", quiet)
        try:
            with atomic_path(out, ".mp4") as tmp, av.open(tmp, "w", format="mp4") as o:
                st = o.add_stream(codec, rate=fps)
                st.width, st.height, st.pix_fmt = st_in.width, st_in.height, "yuv420p"
                st.options = opts
                for fr in c.decode(st_in):
                    fr.pts, fr.time_base = n, 1 / fps
                    fr.pict_type = av.video.frame.PictureType.NONE
                    for p in st.encode(fr):
                        nbytes += p.size
                        o.mux(p)
                    n += 1
                    bar.update(1)
                for p in st.encode():
                    nbytes += p.size
                    o.mux(p)
        except av.error.FFmpegError as exc:
            raise StepFailure("encode-failed", f"{src}: {codec} could not encode it ({exc})") from exc
        finally:
            bar.close()
    seconds = n / float(fps)
    return {"frames": n, "fps": [fps.numerator, fps.denominator], "codec": s.codec, "mode": s.mode,
            "value": s.value, "gop": s.gop or max(1, round(float(fps))), "preset": s.preset,
            "encoder": codec, "encoder_options": opts, "stream_bytes": nbytes,
            "bitrate_kbps": round(nbytes * 8 / seconds / 1000, 3) if seconds else 0.0}


@main_guard
def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m pipelines.encode", description=__doc__.split("\n\n")[0])
    p.add_argument("src", help="lossless crop (crop.mkv from pipelines.prepare)")
    p.add_argument("out", help="output .mp4")
    p.add_argument("--codec", choices=sorted(CODECS), default="h264")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--rate", help="CBR rate, e.g. 80k")
    g.add_argument("--crf", type=float)
    p.add_argument("--gop", type=int, default=0, help="frames between I-frames (0: one second)")
    p.add_argument("--preset", default="medium")
    p.add_argument("--quiet", action="store_true")
    a = p.parse_args(argv)
    s = parse_setting(a.codec, a.rate if a.rate else f"crf{a.crf:g}", a.gop, a.preset)
    if not os.path.isfile(a.src):
        print(f"error: {a.src}: no such file; run pipelines.prepare first", file=sys.stderr)
        return 2
    try:
        r = encode(a.src, a.out, s, a.quiet, os.path.basename(a.src))
    except StepFailure as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 1
    print(f"{a.out}: {r['frames']} frames, {r['bitrate_kbps']:.1f} kbit/s ({s.name})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
