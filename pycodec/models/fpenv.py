"""Flush-to-zero of denormal floats for CPU training and inference, scoped so the process's
floating-point state is given back afterwards (FTZ/DAZ is global: left on, it breaks any later
code that relies on IEEE-754 subnormals, numpy and hypothesis included)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


def denormals_are_flushed() -> bool:
    """True while the CPU flushes denormal results (or inputs) to zero."""
    import torch

    tiny = torch.tensor([1e-30], dtype=torch.float32)
    return bool((tiny * 1e-10 == 0).item())


@contextmanager
def flushed_denormals(enabled: bool = True) -> Iterator[None]:
    """Flush denormals to zero inside the block (denormals make CPU steps about 3x slower,
    models.md section 4) and restore the previous state on exit."""
    import torch

    before = denormals_are_flushed()
    torch.set_flush_denormal(enabled)
    try:
        yield
    finally:
        torch.set_flush_denormal(before)
