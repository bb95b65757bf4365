"""pycodec.models.mdvd: MDVDConfig (presets, Table 1 rows, dict round trip), MDVDNet (shapes of
every row and size, what each switch builds and uses, identity at init, clamping, devices and
dtypes, overfitting one batch), back-projection on real decoded frames and the loss."""

from __future__ import annotations

import time
from dataclasses import replace

import models_helpers as MH
import pytest
import torch
import yaml
from models_helpers import DEVICES, flush_denormals, one_thread  # noqa: F401 (autouse fixtures of every test here)

from pycodec.models import (
    MDVDConfig,
    MDVDInputs,
    MDVDNet,
    apply_back_projection,
    dataset_kwargs,
    make_inputs,
    mdvd_loss,
    target_planes,
)
from pycodec.models.blocks import count_parameters, he_init
from pycodec.models.mdvd import SWITCHES, yuv444_to_planes
from pycodec.nn import CodecWindowDataset, collate


def _batch(path, codec="h264", crop=None, idx=(3, 7), **kw):
    ds = CodecWindowDataset(path, **dataset_kwargs(codec, train=crop is not None, crop=crop), seed=1, **kw)
    return collate([ds[i] for i in idx])


def _perturb_tails(model: MDVDNet) -> None:
    """He-initialise the zero-initialised heads so every parameter gets a gradient."""
    he_init(model.unet.tail, scale=0.1)
    if hasattr(model, "offset_head"):
        he_init(model.offset_head[-1], scale=0.01)


class TestMDVDConfig:
    def test_presets(self):
        paper = MDVDConfig.preset("paper")
        assert paper == MDVDConfig() and paper.channels == 64 and paper.unshuffle == 1
        assert (paper.a_base * 2 ** paper.a_blocks, paper.frame_blocks, paper.v_blocks) == (256, 5, 10)
        compact, rt = MDVDConfig.preset("compact"), MDVDConfig.preset("realtime")
        assert compact.unshuffle == 2 and compact.align == "dcn" and rt.unshuffle == 4 and rt.align == "warp"
        for cfg in (paper, compact, rt):  # all full models: every branch on
            assert cfg.neighbours and cfg.use_mv and cfg.use_speech and cfg.landmarks == "corrected"
            assert cfg.use_saf and cfg.codec_branch and cfg.back_projection
        assert MDVDConfig.preset("compact", channels=16).channels == 16
        with pytest.raises(ValueError, match="unknown MDVD-Net size"):
            MDVDConfig.preset("huge")

    def test_table1_rows(self):
        want = {  # row: (neighbours, use_mv, use_speech, landmarks, use_saf, VCI)
            0: (False, False, False, "none", False, False), 1: (True, False, False, "none", False, False),
            2: (True, True, False, "none", False, False), 3: (True, True, True, "none", False, False),
            4: (True, True, True, "raw", False, False), 5: (True, True, True, "raw", True, False),
            6: (True, True, True, "corrected", False, False), 7: (True, True, True, "corrected", True, False),
            8: (True, True, True, "corrected", True, True)}
        for row, w in want.items():
            for size in ("paper", "compact", "realtime"):
                c = MDVDConfig.table1_row(row, size)
                assert (c.neighbours, c.use_mv, c.use_speech, c.landmarks, c.use_saf, c.codec_branch) == w, (row, size)
                assert c.back_projection == w[5] and c.unshuffle == MDVDConfig.preset(size).unshuffle
        assert MDVDConfig.table1_row(8, "paper") == MDVDConfig()
        for bad in (-1, 9, "8"):
            with pytest.raises(ValueError, match="rows 0..8"):
                MDVDConfig.table1_row(bad)

    def test_dict_round_trip_through_yaml(self):
        cfg = MDVDConfig.table1_row(5, "realtime")
        d = yaml.safe_load(yaml.safe_dump(cfg.to_dict()))
        assert MDVDConfig.from_dict(d) == cfg
        assert MDVDConfig.from_dict({"channels": 16}) == MDVDConfig(channels=16)
        assert MDVDConfig.from_dict({"landmark_sigma": 3}).landmark_sigma == 3.0
        with pytest.raises(ValueError, match=r"unknown MDVD-Net config keys \['chanels', 'zzz'\]"):
            MDVDConfig.from_dict({"chanels": 16, "zzz": 1})
        with pytest.raises(ValueError, match="mapping"):
            MDVDConfig.from_dict([("channels", 16)])

    @pytest.mark.parametrize(("kw", "msg"), [
        ({"channels": 0}, "channels"), ({"channels": 2.5}, "channels"), ({"v_blocks": -1}, "v_blocks"),
        ({"landmarks": "dlib"}, "landmarks"), ({"align": "flow"}, "align"), ({"use_saf": "yes"}, "use_saf"),
        ({"channels": 60, "deform_groups": 8}, "divisible"), ({"neighbours": False}, "use_mv needs neighbours"),
        ({"stem_kernel": 2}, "stem_kernel"), ({"landmark_sigma": 0.0}, "landmark_sigma")])
    def test_invalid_values(self, kw, msg):
        with pytest.raises(ValueError, match=msg):
            MDVDConfig(**kw)


class TestMDVDNetShapes:
    @pytest.mark.parametrize("size", ["compact", "realtime"])
    def test_every_row_at_64(self, size):
        x, _ = MH.synthetic_inputs(1, 64, 64, seed=2)
        for row in range(9):
            m = MDVDNet(MDVDConfig.table1_row(row, size)).eval()
            with torch.inference_mode():
                out = m(x)
            assert out.prebp.shape == (1, 3, 64, 64), (size, row)
            assert {k: tuple(v.shape) for k, v in out.planes.items()} == {"y": (1, 64, 64), "u": (1, 32, 32),
                                                                           "v": (1, 32, 32)}
            # the UNet's last layer starts at zero: the untrained output is the decoded frame, exactly
            assert torch.equal(out.prebp, x.frames[:, 2])
            assert all(torch.equal(out.planes[k], x.decoded[k]) for k in "yuv")

    def test_paper_size(self):
        x, _ = MH.synthetic_inputs(1, 32, 32, seed=2)
        full = MDVDNet(MDVDConfig.preset("paper")).eval()
        n = count_parameters(full, trainable_only=True)
        assert 25e6 < n < 40e6, n  # ~22M of them the A-subnet's Linear(21*256, 64*8*8)
        for row in (0, 8):
            m = full if row == 8 else MDVDNet(MDVDConfig.table1_row(row, "paper")).eval()
            with torch.inference_mode():
                out = m(x)
            assert out.prebp.shape == (1, 3, 32, 32) and torch.equal(out.prebp, x.frames[:, 2])

    def test_odd_sizes_are_padded_and_cropped(self):
        x, _ = MH.synthetic_inputs(2, 50, 70, seed=3)
        m = MDVDNet(MH.tiny_config(8, unshuffle=2)).eval()
        _perturb_tails(m)
        with torch.inference_mode():
            out = m(x)
        assert out.prebp.shape == (2, 3, 50, 70) and out.planes["u"].shape == (2, 25, 35)
        assert not torch.equal(out.prebp, x.frames[:, 2])

    def test_without_frame_planes_the_444_output_is_averaged(self):
        x, _ = MH.synthetic_inputs(1, 32, 32, seed=4)
        m = MDVDNet(MH.tiny_config(8)).eval()
        ref = yuv444_to_planes(x.frames[:, 2])
        small = {k: v[..., :-2, :-2] for k, v in x.decoded.items()}  # planes of another size: not used
        for dec in (None, small):
            with torch.inference_mode():
                out = m(replace(x, decoded=dec))
            assert all(torch.equal(out.planes[k], ref[k].clamp(0, 1)) for k in "yuv")


class TestMDVDNetSwitches:
    def test_every_switch_changes_the_parameters(self):
        full = MH.tiny_config(8)
        names = {(n, tuple(p.shape)) for n, p in MDVDNet(full).named_parameters()}
        changes = {"neighbours": {"neighbours": False, "use_mv": False}, "use_mv": {"use_mv": False},
                   "use_speech": {"use_speech": False}, "landmarks": {"landmarks": "raw"},
                   "use_saf": {"use_saf": False}, "codec_branch": {"codec_branch": False}}
        for sw, kw in changes.items():
            other = {(n, tuple(p.shape)) for n, p in MDVDNet(replace(full, **kw)).named_parameters()}
            assert other != names, sw  # use_mv: the offset head reads 3 channels fewer
        none = {n for n, _ in MDVDNet(replace(full, landmarks="none")).named_parameters()}
        assert not any(n.startswith(("l_subnet", "att_l", "corrector")) for n in none)
        raw = {n for n, _ in MDVDNet(replace(full, landmarks="raw")).named_parameters()}
        assert any(n.startswith("l_subnet") for n in raw) and not any(n.startswith("corrector") for n in raw)
        warp = {n for n, _ in MDVDNet(replace(full, align="warp")).named_parameters()}
        assert not any(n.startswith(("dcn", "offset_head")) for n in warp)
        # the remaining switches have no parameters; they are covered by the BP and loss tests
        assert set(SWITCHES) - set(changes) == {"back_projection", "loss_on_prebp"}

    @pytest.mark.parametrize("row", range(9))
    def test_every_trainable_parameter_is_used(self, row):
        torch.manual_seed(row)
        x, target = MH.synthetic_inputs(2, 32, 32, seed=row)
        cfg = MH.tiny_config(row)
        m = MDVDNet(cfg).train()
        _perturb_tails(m)
        mdvd_loss(m(x), target, cfg).backward()
        unused = [n for n, p in m.named_parameters() if p.requires_grad and (p.grad is None or not p.grad.any())]
        assert not unused, (row, unused)
        frozen = [n for n, p in m.named_parameters() if not p.requires_grad]
        assert all(n.startswith("corrector.") for n in frozen)
        assert bool(frozen) == (cfg.landmarks == "corrected")
        assert len(m.trainable_parameters()) == sum(p.requires_grad for p in m.parameters())

    def test_warp_alignment_uses_the_motion_field(self):
        x, _ = MH.synthetic_inputs(1, 32, 32, seed=5)
        m = MDVDNet(MH.tiny_config(2, align="warp")).eval()
        _perturb_tails(m)
        with torch.inference_mode():
            a = m(x).prebp
            x.mv[:, :, 0] = -2.0
            b = m(x).prebp
        assert not torch.equal(a, b)

    def test_corrector_is_frozen_and_used(self):
        x, _ = MH.synthetic_inputs(1, 32, 32, seed=6)
        m = MDVDNet(MH.tiny_config(8)).train()
        assert not m.corrector.training and all(not p.requires_grad for p in m.corrector.parameters())
        _perturb_tails(m)
        m.eval()
        with torch.inference_mode():
            a = m(x).prebp
            m.load_corrector({k: v + 0.05 for k, v in m.corrector.state_dict().items()})
            b = m(x).prebp
        assert not torch.equal(a, b)
        with pytest.raises(ValueError, match="no landmark corrector"):
            MDVDNet(MH.tiny_config(5)).load_corrector({})

    def test_speech_map_is_read_at_the_sample_origin(self):
        cfg = MH.tiny_config(3, frame_size=64)
        m = MDVDNet(cfg).eval()
        whole, _ = MH.synthetic_inputs(1, 64, 64, seed=7)
        part, _ = MH.synthetic_inputs(1, 32, 32, seed=7)
        part.mfcc = whole.mfcc
        part.origin = torch.tensor([[16, 32]])
        with torch.inference_mode():
            fw = m._speech_map(whole, (32, 32))  # trunk cells of 2x2 pixels
            fp = m._speech_map(part, (16, 16))
        torch.testing.assert_close(fp, fw[..., 8:24, 16:32], rtol=1e-5, atol=1e-6)

    def test_eval_clamps_and_training_does_not(self):
        x, _ = MH.synthetic_inputs(1, 32, 32, seed=8)
        m = MDVDNet(MH.tiny_config(8))
        with torch.no_grad():
            m.unet.tail.bias.fill_(2.0)  # push the output far above 1
            assert m.train()(x).planes["y"].max() > 1.5
            out = m.eval()(x)
            assert float(out.planes["y"].max()) == 1.0 and float(out.prebp.max()) == 1.0
            assert float(out.prebp_planes["u"].max()) == 1.0
            assert m.eval()(x, clamp=False).planes["y"].max() > 1.5

    def test_exceptions(self):
        x, _ = MH.synthetic_inputs(1, 32, 32)
        m = MDVDNet(MH.tiny_config(8))
        with pytest.raises(TypeError, match="MDVDInputs"):
            m(x.frames)
        with pytest.raises(ValueError, match=r"needs inputs \['mv'\]"):
            m(replace(x, mv=None))
        with pytest.raises(ValueError, match="mfcc must be"):
            m(replace(x, mfcc=torch.zeros(1, 21, 13)))
        with pytest.raises(ValueError, match="frames must be"):
            MDVDInputs(frames=torch.zeros(1, 3, 3, 8, 8))
        with pytest.raises(ValueError, match="landmarks must be"):
            MDVDInputs(frames=torch.zeros(1, 5, 3, 8, 8), landmarks=torch.zeros(1, 5, 2))
        with pytest.raises(ValueError, match="decoded must be a dict"):
            MDVDInputs(frames=torch.zeros(1, 5, 3, 8, 8), decoded={"y": torch.zeros(1, 8, 8)})
        single = MDVDNet(MH.tiny_config(0))
        assert single.required_inputs == ()
        single(MDVDInputs(frames=x.frames))  # a single-frame baseline needs nothing else

    @pytest.mark.parametrize("device", DEVICES)
    @pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
    def test_devices_and_dtypes(self, device, dtype):
        x, target = MH.synthetic_inputs(1, 32, 32, seed=9, dtype=dtype)
        cfg = MH.tiny_config(8)
        torch.manual_seed(0)
        m = MDVDNet(cfg).to(device=device, dtype=dtype)
        out = m(x.to(device, dtype))
        assert out.prebp.dtype == dtype and out.prebp.device.type == device
        loss = mdvd_loss(out, {k: v.to(device) for k, v in target.items()}, cfg)
        loss.backward()
        assert loss.dtype == dtype and torch.isfinite(loss)

    def test_overfits_one_batch(self):
        torch.manual_seed(0)
        x, target = MH.synthetic_inputs(1, 16, 16, seed=10)
        cfg = MH.tiny_config(8, loss_on_prebp=True)
        m = MDVDNet(cfg).train()
        opt = torch.optim.Adam(m.trainable_parameters(), 1e-3)
        t0, first, value = time.monotonic(), None, None
        for _ in range(300):
            loss = mdvd_loss(m(x), target, cfg)
            value = float(loss.detach())
            first = value if first is None else first
            if value < first / 10:
                break
            opt.zero_grad()
            loss.backward()
            opt.step()
        assert value < first / 10, (first, value, time.monotonic() - t0)


@pytest.fixture(scope="module")
def shards(store, tmp_path_factory):
    return {n: MH.h264_shard(store, tmp_path_factory, n) for n in ("nodeblock", "crop_100x62")}


class TestBackProjection:
    @pytest.mark.parametrize("crop", [(32, 48), None])
    def test_bp_of_the_decoded_frame_changes_nothing(self, shards, crop):
        """nodeblock: decoded == recon, so back-projecting frame t gives it back (up to rounding),
        through apply_back_projection and through an untrained model with BP on."""
        b = _batch(shards["nodeblock"], crop=crop, idx=(0, 4, 9))
        x = make_inputs(b, "h264")
        dec = {k: b[f"decoded/{k}"][:, 2] for k in "yuv"}
        planes = {k: v.double() / 255 for k, v in dec.items()}
        out = apply_back_projection(planes, x.bp.to(dtype=torch.float64))
        m = MDVDNet(MH.tiny_config(8)).double().eval()
        with torch.no_grad():
            model_out = m(x.to(dtype=torch.float64)).planes
        for k in "yuv":
            for o in (out[k], model_out[k]):
                assert o.shape == dec[k].shape
                px = torch.round(o * 255).clamp(0, 255)
                assert float((px != dec[k].double()).double().mean()) < 1e-3, k
                assert float((o * 255 - dec[k].double()).abs().max()) <= 1.0, k

    def test_display_window_of_a_cropped_stream(self, shards):
        """crop_100x62: display 100x62 inside a coded 112x64 picture; the unclipped reconstruction
        P + E is inside every interval, so back-projection leaves it (to within rounding)."""
        b = _batch(shards["crop_100x62"], idx=(2, 5))
        x = make_inputs(b, "h264")
        assert x.bp.coeffs["y"].shape[-2:] == (64, 112) and x.frames.shape[-2:] == (62, 100)
        pe = {k: (b[f"prediction/{k}"].double() + b[f"residual/{k}"].double()) / 255 for k in "yuv"}
        out = apply_back_projection(pe, x.bp.to(dtype=torch.float64))
        for k in "yuv":
            assert float((out[k] - pe[k]).abs().max()) * 255 < 0.5
        with pytest.raises(ValueError, match="prediction"):
            apply_back_projection({k: v[..., :-2, :] for k, v in pe.items()}, x.bp)
        with pytest.raises(KeyError, match="'u'"):
            apply_back_projection({"y": pe["y"]}, x.bp)

    def test_bp_moves_a_noisy_frame_towards_the_reconstruction(self, shards):
        b = _batch(shards["nodeblock"], crop=(32, 48), idx=(5, 6))
        x = make_inputs(b, "h264").to(dtype=torch.float64)
        g = torch.Generator().manual_seed(0)
        rec = {k: b[f"decoded/{k}"][:, 2].double() / 255 for k in "yuv"}
        noisy = {k: v + torch.randn(v.shape, generator=g, dtype=torch.float64) * 6 / 255 for k, v in rec.items()}
        out = apply_back_projection(noisy, x.bp)
        for k in "yuv":
            assert float((out[k] - rec[k]).abs().mean()) < 0.8 * float((noisy[k] - rec[k]).abs().mean()), k

    def test_loss(self, shards):
        b = _batch(shards["nodeblock"], crop=(32, 48), idx=(1, 2))
        x, tgt = make_inputs(b, "h264"), target_planes(b)
        cfg = MH.tiny_config(8)
        m = MDVDNet(cfg).train()
        _perturb_tails(m)
        out = m(x)
        n = sum(v.numel() for v in tgt.values())
        want = sum((out.planes[k] - tgt[k]).abs().sum() for k in "yuv") / n
        torch.testing.assert_close(mdvd_loss(out, tgt, cfg), want)
        pre = sum((out.prebp_planes[k] - tgt[k]).abs().sum() for k in "yuv") / n
        torch.testing.assert_close(mdvd_loss(out, tgt, replace(cfg, loss_on_prebp=True)), want + pre)
        mdvd_loss(out, tgt, cfg).backward()  # through the back-projection into the network
        assert m.unet.tail.weight.grad.abs().sum() > 0
        # back_projection switch: the same network without BP gives other planes
        off = MDVDNet(replace(cfg, back_projection=False))
        off.load_state_dict(m.state_dict())
        with torch.no_grad():
            assert not torch.equal(off(x).planes["y"], m(x).planes["y"])
            assert torch.equal(off(x).planes["y"], m(x).prebp_planes["y"])
        with pytest.raises(ValueError, match="differ in shape"):
            mdvd_loss(out, {k: v[..., 1:] for k, v in tgt.items()}, cfg)
