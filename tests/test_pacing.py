"""The writer's paced model: the same vectors, and the CPU it yields while the machine is busy."""

import numpy as np
import pytest

from search.service.pacing import PacedEmbedder

TEXTS = ["The central bank raised its key rate by a quarter point on Thursday.",
         "Officials said the storm had cut power to forty thousand homes.",
         "The minister resigned after the report was published."]


def test_a_busy_machine_gets_the_cores_back_between_texts_and_the_vectors_stay_the_same(embedder):
    naps = []
    paced = PacedEmbedder(embedder, duty=0.25, idle=lambda: False, sleep=naps.append)
    vectors = paced.embed(TEXTS, batch_size=8)
    assert np.array_equal(vectors, embedder.embed(TEXTS, batch_size=8))
    assert len(naps) == len(TEXTS)  # one text at a time, a pause after each
    assert all(n > 0 for n in naps)
    assert paced.slept_s == pytest.approx(sum(naps))
    assert paced.dimension == embedder.dimension and paced.name == embedder.name


def test_the_pause_keeps_the_model_to_its_share_of_a_core(embedder):
    clock = iter([0.0, 0.03])  # the text took 30 ms
    naps = []
    PacedEmbedder(embedder, duty=0.25, idle=lambda: False, sleep=naps.append,
                  clock=lambda: next(clock)).embed(TEXTS[:1])
    assert naps == [pytest.approx(0.09)]  # 30 ms of work, 90 ms asleep: a quarter of a core


def test_with_a_core_to_spare_it_runs_flat_out(embedder):
    naps = []
    paced = PacedEmbedder(embedder, duty=0.25, idle=lambda: True, sleep=naps.append)
    assert np.array_equal(paced.embed(TEXTS), embedder.embed(TEXTS))
    assert naps == [] and paced.slept_s == 0


def test_a_duty_outside_zero_to_one_is_refused(embedder):
    with pytest.raises(ValueError, match=r"duty must be in \(0, 1\], got 0"):
        PacedEmbedder(embedder, duty=0)
    assert PacedEmbedder(embedder, duty=1)._idle is None  # never paced
