"""Helpers of the pycodec.models tests: dataset-shard-like files made from the generated test
streams (``pycodec extract`` plus the shard groups: ground truth from the encoder's own input,
synthetic landmarks and MFCCs), synthetic MDVD-Net batches and tiny configurations."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import streams as S
import torch

from pycodec import cli


def make_shard(stream: Path, dest: Path, seed: int = 0, spec=None) -> Path:
    """Extract ``stream`` to ``dest/<stem>.h5`` and add the dataset-shard groups MDVD-Net reads:
    ``gt/{y,u,v}`` (the rendered frames the encoder was given when ``spec`` is the stream's H.264
    :class:`streams.StreamSpec`, else the decoded frames), ``landmarks/decoded`` and
    ``landmarks/gt`` (a seeded, slowly moving 68-point cloud) and ``audio/mfcc`` (seeded noise,
    4 x 13 per frame)."""
    path = Path(dest) / f"{Path(stream).stem}.h5"
    if path.exists():
        return path
    assert cli.main(["extract", str(stream), str(path)]) == 0
    rng = np.random.default_rng(seed)
    with h5py.File(path, "a") as f:
        n = int(f["frame/pts"].shape[0])
        if spec is not None:
            gt = list(S.render(spec.width, spec.height, spec.frames, spec.seed, fade=spec.fade))
            assert n == len(gt), (n, len(gt))
            for i, k in enumerate("yuv"):
                f.create_dataset(f"gt/{k}", data=np.stack([np.rint(g[i]).astype(np.uint8) for g in gt]))
        else:
            for k in "yuv":
                f.create_dataset(f"gt/{k}", data=f[f"decoded/{k}"][:])
        h, w = f["decoded/y"].shape[1:]
        base = rng.uniform([0.2 * w, 0.2 * h], [0.8 * w, 0.8 * h], (68, 2))
        drift = np.arange(n)[:, None, None] * np.array([0.5, -0.25])
        lm_gt = (base[None] + drift).astype(np.float32)
        f.create_dataset("landmarks/gt", data=lm_gt)
        f.create_dataset("landmarks/decoded", data=(lm_gt + rng.normal(0, 1.0, lm_gt.shape)).astype(np.float32))
        f.create_dataset("audio/mfcc", data=rng.normal(0, 1, (n, 4, 13)).astype(np.float32))
    return path


def synthetic_inputs(b: int = 2, h: int = 32, w: int = 32, seed: int = 0, dtype: torch.dtype = torch.float32):
    """A random :class:`MDVDInputs` (no BP data) and a target: frame t plus a smooth correction."""
    from pycodec.models import MDVDInputs
    from pycodec.models.mdvd import yuv444_to_planes

    g = torch.Generator().manual_seed(seed)

    def r(*s):
        return torch.rand(*s, generator=g, dtype=torch.float64).to(dtype)

    base = torch.nn.functional.interpolate(r(b, 3, h // 4, w // 4), size=(h, w), mode="bilinear", align_corners=False)
    frames = (base.unsqueeze(1) + 0.05 * r(b, 5, 3, h, w)).clamp(0, 1)
    noise = 0.08 * (r(b, 3, h, w) - 0.5)
    frames[:, 2] = (base + noise).clamp(0, 1)
    mv = torch.zeros(b, 4, 3, h, w, dtype=dtype)
    mv[:, :, 0] = 0.5
    mv[:, :, 2] = 1.0
    x = MDVDInputs(frames=frames, mfcc=torch.randn(b, 21, 52, generator=g).to(dtype),
                   landmarks=(r(b, 68, 2) * torch.tensor([w - 1, h - 1], dtype=dtype)),
                   mv=mv, pred=base.clone(), resid=noise, tu=r(b, 2, h, w), qp=r(b, 1, h, w) * 0.5 + 0.3,
                   origin=torch.zeros(b, 2, dtype=torch.int64), decoded=yuv444_to_planes(frames[:, 2]))
    # a smooth correction the model can learn from its inputs (the prediction holds ``base``)
    target = yuv444_to_planes(frames[:, 2] + 0.1 * (base - 0.5))
    return x, target


_SHARD_DIR: list[Path] = []


def shard_dir(tmp_path_factory) -> Path:
    """One directory for the shard-like files of the whole test session."""
    if not _SHARD_DIR:
        _SHARD_DIR.append(tmp_path_factory.mktemp("model_shards"))
    return _SHARD_DIR[0]


def h264_shard(store, tmp_path_factory, name: str) -> Path:
    """The shard-like file of generated H.264 stream ``name`` (built once per session)."""
    return make_shard(store.path(name), shard_dir(tmp_path_factory), spec=S.SPECS[name])


def hevc_shard(hevc_store, tmp_path_factory, name: str) -> Path:
    """The shard-like file of generated HEVC stream ``name`` (ground truth = decoded)."""
    return make_shard(hevc_store.path(name), shard_dir(tmp_path_factory))


TINY = {"channels": 8, "frame_blocks": 1, "v_blocks": 1, "a_base": 2, "a_blocks": 2, "l_blocks": 1, "c_blocks": 1,
        "unet_levels": 2, "unet_blocks": 1, "deform_groups": 2, "lstm_hidden": 8, "lstm_layers": 1, "frame_size": 32}


def tiny_config(row: int = 8, **overrides):
    """Table 1 row ``row`` of a tiny compact model (fast tests)."""
    from dataclasses import replace

    from pycodec.models import MDVDConfig

    return replace(MDVDConfig.table1_row(row, "compact"), **{**TINY, **overrides})


# CPU always, CUDA where there is a GPU (none on the CPU machines this project runs CI on).
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA"))]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Small tensors gain nothing from a second thread, and on a shared machine a 2-thread OpenMP
    team stalls for seconds whenever one of its threads is descheduled."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(autouse=True, scope="module")
def flush_denormals():
    """CPU steps run about 3x faster with denormals flushed; scoped to the module, because the
    FTZ/DAZ state is process-wide and later tests (hypothesis among them) need subnormals."""
    from pycodec.models.fpenv import flushed_denormals

    with flushed_denormals():
        yield
