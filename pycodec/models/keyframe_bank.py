"""The streaming keyframe set of Keyframes-GAN (models.md 2.5; paper K = 10): every I-frame enters
the set, a policy keeps at most K, and each frame restores against the keyframe whose landmarks are
nearest to its own.  Causal (no look-ahead) and torch-free: crops are stored as given."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

POLICIES = ("lfu", "maxdist")


@dataclass
class Keyframe:
    """One held reference: its crop and landmarks (N, 2) float64, the LFU ``count`` (halved at each
    I-frame) and ``chosen``, the lifetime number of times :meth:`KeyframeBank.choose` returned it."""

    frame_index: int
    crop: Any
    landmarks: np.ndarray
    count: int = 0
    chosen: int = 0


def _landmarks(landmarks: Any) -> np.ndarray:
    """A float64 (N, 2) copy with finite values (N = 68 for dlib's shape predictor)."""
    lm = np.array(landmarks, dtype=np.float64)
    if lm.ndim != 2 or lm.shape[1] != 2 or lm.shape[0] < 1:
        raise ValueError(f"landmarks must be (N, 2), got shape {lm.shape}")
    if not np.isfinite(lm).all():
        raise ValueError("landmarks must be finite (reuse the last detection for a missed face)")
    return lm


class KeyframeBank:
    """At most ``max_keyframes`` I-frames, kept by ``policy``:

    * ``'lfu'``: when full, evict the keyframe with the smallest count (tie: the oldest, smallest
      frame index), add the new one with count 0, then halve every count with ``//= 2`` (integer
      halving: a keyframe chosen only once since the last I-frame decays to 0).
    * ``'maxdist'``: add, then while more than K drop the keyframe j minimising sum_i ||lm_i - lm_j||
      (tie: the oldest), a greedy maximum total pairwise distance set.

    ``max_keyframes=1`` keeps the latest I-frame under either policy."""

    def __init__(self, policy: str = "lfu", max_keyframes: int = 10) -> None:
        if policy not in POLICIES:
            raise ValueError(f"policy must be one of {POLICIES}, got {policy!r}")
        if isinstance(max_keyframes, bool) or not isinstance(max_keyframes, (int, np.integer)):
            raise TypeError(f"max_keyframes must be an int, got {type(max_keyframes).__name__}")
        if max_keyframes < 1:
            raise ValueError(f"max_keyframes must be >= 1, got {max_keyframes}")
        self.policy = policy
        self.max_keyframes = int(max_keyframes)
        self._held: list[Keyframe] = []  # oldest first
        self._chosen: dict[int, int] = {}  # every keyframe ever added: frame index -> times chosen

    def __len__(self) -> int:
        return len(self._held)

    @property
    def keyframes(self) -> tuple[Keyframe, ...]:
        """The held keyframes, in the order they were added."""
        return tuple(self._held)

    def add(self, frame_index: int, crop: Any, landmarks: np.ndarray) -> None:
        """Enter I-frame ``frame_index`` (its crop and landmarks) under the bank's policy."""
        frame_index = int(frame_index)
        if frame_index in self._chosen:
            raise ValueError(f"frame {frame_index} was already added to the keyframe bank")
        lm = _landmarks(landmarks)
        if self._held and lm.shape != self._held[0].landmarks.shape:
            raise ValueError(f"landmarks {lm.shape} differ in shape from the bank's {self._held[0].landmarks.shape}")
        new = Keyframe(frame_index, crop, lm)
        if self.policy == "lfu":
            if len(self._held) >= self.max_keyframes:
                self._held.remove(min(self._held, key=lambda k: (k.count, k.frame_index)))
            self._held.append(new)
            for k in self._held:
                k.count //= 2
        else:
            self._held.append(new)
            while len(self._held) > self.max_keyframes:
                self._held.pop(self._closest_to_the_rest())
        self._chosen[frame_index] = 0

    def _closest_to_the_rest(self) -> int:
        """Position of the held keyframe minimising the summed landmark distance to all others."""
        lms = np.stack([k.landmarks for k in self._held])
        dist = np.linalg.norm(lms[:, None] - lms[None], axis=(2, 3))  # symmetric: ties stay exact
        total = dist.sum(1)
        return min(range(len(self._held)), key=lambda j: (total[j], self._held[j].frame_index))

    def choose(self, landmarks: np.ndarray) -> Keyframe | None:
        """The held keyframe whose landmarks are nearest (L2 over the (N, 2) array) to ``landmarks``
        (tie: the newest), its count and times chosen incremented; None while the bank is empty
        (frames before the first I-frame pass through unrestored)."""
        lm = _landmarks(landmarks)
        if not self._held:
            return None
        if lm.shape != self._held[0].landmarks.shape:
            raise ValueError(f"landmarks {lm.shape} differ in shape from the bank's {self._held[0].landmarks.shape}")
        dist = [float(np.linalg.norm(k.landmarks - lm)) for k in self._held]
        best = min(range(len(self._held)), key=lambda j: (dist[j], -self._held[j].frame_index))
        k = self._held[best]
        k.count += 1
        k.chosen += 1
        self._chosen[k.frame_index] += 1
        return k

    def stats(self) -> dict[str, Any]:
        """Summary for the restore report: ``added`` (keyframes ever added), ``held`` (now),
        ``used`` (keyframes chosen at least once), ``choices`` (total choose() hits), ``held_frames``
        (frame indices now held) and ``chosen`` (frame index -> lifetime times chosen, evicted
        keyframes included, in the order added)."""
        return {
            "policy": self.policy,
            "max_keyframes": self.max_keyframes,
            "added": len(self._chosen),
            "held": len(self._held),
            "used": sum(1 for n in self._chosen.values() if n > 0),
            "choices": sum(self._chosen.values()),
            "held_frames": [k.frame_index for k in self._held],
            "chosen": dict(self._chosen),
        }
