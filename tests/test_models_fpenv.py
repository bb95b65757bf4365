"""pycodec.models.fpenv: denormal flushing is on inside the block and given back after it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pycodec.models.fpenv import denormals_are_flushed, flushed_denormals


class TestFlushedDenormals:
    def test_smoke_on_inside_off_after(self):
        assert not denormals_are_flushed()
        with flushed_denormals():
            assert denormals_are_flushed()
            assert float((torch.tensor([1e-30]) * 1e-10).item()) == 0.0
        assert not denormals_are_flushed()
        assert float((torch.tensor([1e-30]) * 1e-10).item()) > 0.0
        assert float(np.float32(1e-30) * np.float32(1e-10)) > 0.0  # numpy sees the same CPU state

    def test_restored_after_exception(self):
        with pytest.raises(RuntimeError, match="boom"), flushed_denormals():
            raise RuntimeError("boom")
        assert not denormals_are_flushed()

    def test_nested_keeps_the_outer_state(self):
        with flushed_denormals():
            with flushed_denormals(False):
                assert not denormals_are_flushed()
            assert denormals_are_flushed()
        assert not denormals_are_flushed()
