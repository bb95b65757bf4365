"""The H.264 invariants on real-world files nobody on the team encoded.

The files come from Debian's forensics-samples-files package (fetched by
``scripts/fetch_samples.sh DIR``, ``make samples``): a 1080p phone recording (hardware encoder,
CABAC, 8x8 transform, cropped 1088 -> 1080) and a screen recording encoded by x264 at very low QP
(2-6, so 8x8 quantisation steps are fractional) in MP4 and AVI.  They are looked up in
$PYCODEC_SAMPLES, else build/samples.  Each check runs on the first FRAMES display frames.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import h264_bitstream as hb
import numpy as np
import pytest
from conftest import ROOT, frames_md5, pyav_frames, pycodec_decode
from test_h264_features import check_block_maps
from test_h264_invariants import (
    _fmt,
    check_chroma_dc,
    check_decoded,
    check_flags_clean,
    check_idct,
    check_intra16_dc,
    check_levels_qstep,
    check_mv_uniform_in_pu,
    check_mvs,
    check_qp,
    check_qp_chroma,
    check_recon,
    is_flat,
)

FRAMES = 8
SAMPLES = {  # name: (sha256, expected display size)
    "phone_1080p.mp4": ("9b0710a436413f75cc3cd1c1048aa3c4d7c28f76f51ef6a25413d0018d22ec99", (1920, 1080)),
    "hello_720p.mp4": ("68162af4e15b20fb61261e55de79e989f53d6295f6226b4bda1905b8c40e9676", (1280, 720)),
    "hello_576p.avi": ("eac488b5793f5428ea70f064abbf28941b4ede26824aec1808fcb528c64b1587", (1024, 576)),
}


def sample_dir() -> Path:
    return Path(os.environ.get("PYCODEC_SAMPLES") or ROOT / "build" / "samples")


@pytest.fixture(scope="module", params=sorted(SAMPLES))
def sample(request):
    name = request.param
    path = sample_dir() / name
    if not path.exists():
        msg = (f"real-world sample {path} not found: run `make samples` (or scripts/fetch_samples.sh DIR and "
               f"set PYCODEC_SAMPLES=DIR)")
        if os.environ.get("CI"):
            pytest.fail(msg, pytrace=False)  # CI fetches them: a missing file is a failure there
        pytest.skip(msg)
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    assert sha == SAMPLES[name][0], f"{path}: unexpected sha256 {sha} (re-fetch with `make samples`)"
    return name, path, hb.analyze_file(str(path), max_packets=60)


def test_sample_is_progressive_8bit_420(sample, pycodec):
    name, path, syn = sample
    sps = syn.first_sps
    assert sps["frame_mbs_only"] == 1 and not any(s["field_pic"] for s in syn.slices)
    assert sps["bit_depth_luma"] == 8 and sps["chroma_format_idc"] == 1
    info = pycodec.info(str(path))
    assert (info["width"], info["height"]) == SAMPLES[name][1] == (sps["width"], sps["height"])
    assert (info["coded_width"], info["coded_height"]) == (sps["coded_width"], sps["coded_height"])
    left, right, top, bottom = sps["crop_lrtb"]
    assert tuple(info["crop"]) == (top, bottom, left, right)


def _run(sample, checks):
    """Decode the first FRAMES frames with pycodec and PyAV in lockstep; apply ``checks``."""
    name, path, syn = sample
    pps = syn.first_pps
    flat = is_flat(syn)
    problems: list[str] = []
    n = 0
    ref_iter = pyav_frames(path)
    import pycodec

    with pycodec.open(str(path), frames=(0, FRAMES)) as r:
        info = r.info
        for fr in r:
            rf = next(ref_iter)
            lab = f"{name} frame {fr.index} ({fr.type})"
            for c in checks:
                problems += c(fr, rf, info, pps, flat, lab)
            n += 1
    ref_iter.close()
    assert n == FRAMES, f"{name}: pycodec gave {n} of the first {FRAMES} frames"
    assert not problems, _fmt(problems)


def test_decoded_equals_pyav(sample, pycodec):
    _run(sample, [lambda fr, rf, info, pps, flat, lab: check_decoded(fr, rf, lab) + check_flags_clean(fr, lab)])


def test_recon_is_clipped_prediction_plus_residual(sample, pycodec):
    _run(sample, [lambda fr, rf, info, pps, flat, lab: check_recon(fr, lab)])


def test_motion_vectors_equal_ffmpeg_export(sample, pycodec):
    _run(sample, [lambda fr, rf, info, pps, flat, lab: check_mvs(fr, rf, lab) + check_mv_uniform_in_pu(fr, lab)])


def test_qp_equals_venc_params(sample, pycodec):
    _run(sample, [lambda fr, rf, info, pps, flat, lab: check_qp(fr, rf, lab) + check_qp_chroma(fr, pps, lab)])


def test_coefficient_math(sample, pycodec):
    """residual == IDCT(coeffs); levels/qstep/coeffs consistent (flat-matrix formula where the
    stream's matrices are flat); i16x16 and chroma DC Hadamard paths."""
    _run(sample, [lambda fr, rf, info, pps, flat, lab: check_idct(fr, info, lab),
                  lambda fr, rf, info, pps, flat, lab: check_levels_qstep(fr, info, pps, lab, flat),
                  lambda fr, rf, info, pps, flat, lab: check_intra16_dc(fr, lab, flat),
                  lambda fr, rf, info, pps, flat, lab: check_chroma_dc(fr, lab, flat)])


def test_block_maps_consistent_with_mb_type(sample, pycodec):
    _run(sample, [lambda fr, rf, info, pps, flat, lab: check_block_maps(fr, lab)])


def test_output_identical_with_export_off(sample, pycodec):
    _name, path, _ = sample
    _, full = pycodec_decode(path, None, (0, FRAMES))
    _, plain = pycodec_decode(path, "frame,decoded", (0, FRAMES))
    assert len(full) == len(plain) == FRAMES
    assert frames_md5(full) == frames_md5(plain)
    assert [(f.poc, f.decode_index) for f in full] == [(f.poc, f.decode_index) for f in plain]
    assert any(np.any(f.arrays["residual/y"]) for f in full)
