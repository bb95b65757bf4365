"""pycodec.models.keyframe_bank: the streaming keyframe set of Keyframes-GAN (models.md 2.5) on
scripted I-frame/frame sequences with hand-computed states (LFU counts and halving, eviction and
its tie rule, maxdist drops, nearest-keyframe choice, stats), K = 1, and bad arguments.

Landmarks are 68 x 2 arrays shifted as a whole by (x, y): the distance between two of them is
sqrt(68) times the distance of their shifts, so every comparison is the plane geometry of the shifts."""

from __future__ import annotations

import numpy as np
import pytest

from pycodec.models.keyframe_bank import Keyframe, KeyframeBank

BASE = np.random.default_rng(0).uniform(0, 256, size=(68, 2))


def lm(x: float, y: float = 0.0) -> np.ndarray:
    return BASE + np.array([x, y])


def counts(bank: KeyframeBank) -> dict[int, int]:
    return {k.frame_index: k.count for k in bank.keyframes}


def pick(bank: KeyframeBank, x: float, y: float = 0.0) -> int:
    k = bank.choose(lm(x, y))
    assert k is not None
    return k.frame_index


class TestLFU:
    def test_scripted_sequence(self):
        bank = KeyframeBank("lfu", max_keyframes=3)
        bank.add(0, "crop0", lm(0))
        assert counts(bank) == {0: 0}
        assert [pick(bank, 0), pick(bank, 0.4)] == [0, 0]
        assert counts(bank) == {0: 2}

        bank.add(10, "crop10", lm(10))  # not full: append, then halve: 2 -> 1
        assert counts(bank) == {0: 1, 10: 0}
        assert [pick(bank, 10), pick(bank, 9), pick(bank, 11)] == [10, 10, 10]
        assert counts(bank) == {0: 1, 10: 3}

        bank.add(20, "crop20", lm(20))  # 1 -> 0, 3 -> 1
        assert counts(bank) == {0: 0, 10: 1, 20: 0}
        assert [pick(bank, 20), pick(bank, 4)] == [20, 0]  # 4 is nearer 0 than 10
        assert counts(bank) == {0: 1, 10: 1, 20: 1}

        bank.add(30, "crop30", lm(30))  # full, counts all 1: the oldest (0) goes; then halve
        assert counts(bank) == {10: 0, 20: 0, 30: 0}
        assert [pick(bank, 30), pick(bank, 29), pick(bank, 21), pick(bank, 12), pick(bank, 14)] == [30, 30, 20, 10, 10]
        assert counts(bank) == {10: 2, 20: 1, 30: 2}

        bank.add(40, "crop40", lm(40))  # evict the least used (20); 2 -> 1
        assert counts(bank) == {10: 1, 30: 1, 40: 0}
        assert [k.crop for k in bank.keyframes] == ["crop10", "crop30", "crop40"]
        assert {k.frame_index: k.chosen for k in bank.keyframes} == {10: 5, 30: 2, 40: 0}  # never halved

        assert bank.stats() == {
            "policy": "lfu", "max_keyframes": 3, "added": 5, "held": 3, "used": 4, "choices": 12,
            "held_frames": [10, 30, 40], "chosen": {0: 3, 10: 5, 20: 2, 30: 2, 40: 0},
        }

    def test_odd_counts_halve_down(self):
        bank = KeyframeBank("lfu", max_keyframes=4)
        bank.add(0, None, lm(0))
        for _ in range(5):
            pick(bank, 0)
        bank.add(1, None, lm(50))
        assert counts(bank) == {0: 2, 1: 0}
        for _ in range(3):
            pick(bank, 50)
        bank.add(2, None, lm(100))
        assert counts(bank) == {0: 1, 1: 1, 2: 0}

    def test_eviction_tie_goes_to_the_smallest_frame_index(self):
        bank = KeyframeBank("lfu", max_keyframes=2)
        bank.add(50, None, lm(0))
        bank.add(5, None, lm(10))  # added later, but the older frame
        bank.add(60, None, lm(20))
        assert [k.frame_index for k in bank.keyframes] == [50, 60]

    def test_least_used_goes_even_when_newest(self):
        bank = KeyframeBank("lfu", max_keyframes=2)
        bank.add(0, None, lm(0))
        for _ in range(4):
            pick(bank, 0)
        bank.add(1, None, lm(10))  # counts {0: 2, 1: 0}
        bank.add(2, None, lm(20))
        assert counts(bank) == {0: 1, 2: 0}


class TestMaxDist:
    def test_scripted_sequence(self):
        bank = KeyframeBank("maxdist", max_keyframes=3)
        for i, (x, y) in zip((0, 10, 20), ((0, 0), (10, 0), (0, 10))):
            bank.add(i, f"c{i}", lm(x, y))
        assert [k.frame_index for k in bank.keyframes] == [0, 10, 20]

        # D = (0.5, 0.5) hugs A = (0, 0); summed distances / sqrt(68):
        # A 10 + 10 + 0.71 = 20.71, B = C 10 + 14.14 + 9.51 = 33.66, D 0.71 + 9.51 + 9.51 = 19.73 -> drop D
        bank.add(30, "c30", lm(0.5, 0.5))
        assert [k.frame_index for k in bank.keyframes] == [0, 10, 20]

        # E = (12, 9): A 10 + 10 + 15 = 35, B (10, 0) 10 + 14.14 + 9.22 = 33.36,
        # C (0, 10) 10 + 14.14 + 12.04 = 36.18, E 15 + 9.22 + 12.04 = 36.26 -> drop B
        bank.add(40, "c40", lm(12, 9))
        assert [k.frame_index for k in bank.keyframes] == [0, 20, 40]
        assert [k.crop for k in bank.keyframes] == ["c0", "c20", "c40"]

        assert [pick(bank, 11, 8), pick(bank, 1, 1), pick(bank, 11, 8)] == [40, 0, 40]
        assert counts(bank) == {0: 1, 20: 0, 40: 2}  # maxdist never halves
        st = bank.stats()
        assert (st["added"], st["held"], st["used"], st["choices"]) == (5, 3, 2, 3)
        assert st["chosen"] == {0: 1, 10: 0, 20: 0, 30: 0, 40: 2}

    def test_drop_matches_total_distance_definition(self):
        rng = np.random.default_rng(1)
        shifts = rng.normal(0, 20, size=(6, 2))
        bank = KeyframeBank("maxdist", max_keyframes=5)
        for i, s in enumerate(shifts):
            bank.add(i, None, lm(*s))
        lms = np.stack([lm(*s) for s in shifts])
        total = [sum(np.linalg.norm(lms[i] - lms[j]) for i in range(6)) for j in range(6)]
        dropped = int(np.argmin(total))
        assert [k.frame_index for k in bank.keyframes] == [i for i in range(6) if i != dropped]


class TestChoose:
    @pytest.mark.parametrize("policy", ["lfu", "maxdist"])
    def test_empty_bank_returns_none(self, policy):
        bank = KeyframeBank(policy)
        assert bank.choose(lm(0)) is None
        assert len(bank) == 0
        assert bank.stats() == {"policy": policy, "max_keyframes": 10, "added": 0, "held": 0, "used": 0,
                                "choices": 0, "held_frames": [], "chosen": {}}

    def test_returns_the_keyframe_and_counts(self):
        bank = KeyframeBank()
        bank.add(0, "a", lm(0))
        bank.add(7, "b", lm(0, 10))
        k = bank.choose(lm(1, 7))
        assert isinstance(k, Keyframe)
        assert (k.frame_index, k.crop, k.count, k.chosen) == (7, "b", 1, 1)
        np.testing.assert_array_equal(k.landmarks, lm(0, 10))

    def test_iframe_chooses_itself_after_add(self):
        bank = KeyframeBank(max_keyframes=3)
        for i in range(5):
            bank.add(i, None, lm(10 * i))
            assert pick(bank, 10 * i) == i

    def test_distance_tie_goes_to_the_newest(self):
        bank = KeyframeBank(max_keyframes=3)
        bank.add(0, None, lm(0))
        bank.add(10, None, lm(10))
        bank.add(20, None, lm(10))  # a missed detection reused the last landmarks
        assert [pick(bank, 10), pick(bank, 12), pick(bank, -5)] == [20, 20, 0]
        assert counts(bank) == {0: 1, 10: 0, 20: 2}

    def test_landmarks_are_copied(self):
        bank = KeyframeBank()
        a = lm(0)
        bank.add(0, None, a)
        a += 100.0
        np.testing.assert_array_equal(bank.keyframes[0].landmarks, lm(0))

    def test_integer_landmarks(self):
        bank = KeyframeBank()
        bank.add(0, None, np.zeros((68, 2), dtype=np.int32))
        assert bank.choose(np.ones((68, 2), dtype=np.int64)).frame_index == 0


@pytest.mark.parametrize("policy", ["lfu", "maxdist"])
def test_k1_is_always_the_latest_iframe(policy):
    bank = KeyframeBank(policy, max_keyframes=1)
    for i, x in enumerate([0, 50, 1, 49, 0]):
        bank.add(i, f"c{i}", lm(x))
        assert [k.frame_index for k in bank.keyframes] == [i]
        assert pick(bank, 0) == i  # even when an evicted keyframe was closer
        assert pick(bank, 50) == i
    assert bank.stats()["chosen"] == {i: 2 for i in range(5)}


class TestErrors:
    def test_bad_policy(self):
        with pytest.raises(ValueError):
            KeyframeBank("lru")

    @pytest.mark.parametrize("k, exc", [(0, ValueError), (-3, ValueError), (2.5, TypeError), (True, TypeError)])
    def test_bad_max_keyframes(self, k, exc):
        with pytest.raises(exc):
            KeyframeBank("lfu", max_keyframes=k)

    def test_bad_landmarks(self):
        bank = KeyframeBank()
        for bad in (np.zeros((68, 3)), np.zeros(136), np.zeros((0, 2)), np.full((68, 2), np.nan)):
            with pytest.raises(ValueError):
                bank.add(0, None, bad)
            with pytest.raises(ValueError):
                bank.choose(bad)
        assert len(bank) == 0

    def test_landmark_count_must_match_the_bank(self):
        bank = KeyframeBank()
        bank.add(0, None, lm(0))
        with pytest.raises(ValueError):
            bank.add(1, None, np.zeros((5, 2)))
        with pytest.raises(ValueError):
            bank.choose(np.zeros((5, 2)))

    def test_frame_added_twice(self):
        bank = KeyframeBank(max_keyframes=1)
        bank.add(3, None, lm(0))
        bank.add(4, None, lm(1))  # evicts 3
        with pytest.raises(ValueError):
            bank.add(3, None, lm(0))
        with pytest.raises(ValueError):
            bank.add(4, None, lm(0))
        assert bank.stats()["added"] == 2
