"""The writer's pacing: the same vectors and the same index, and the CPU it yields while the machine is busy."""

import itertools
import threading
import time

import numpy as np
import pytest

from search.index.yielding import give_way, paced
from search.service.pacing import SLICE_S, PacedEmbedder, Pacer

TEXTS = ["The central bank raised its key rate by a quarter point on Thursday.",
         "Officials said the storm had cut power to forty thousand homes.",
         "The minister resigned after the report was published."]


def test_a_busy_machine_gets_the_cores_back_between_texts_and_the_vectors_stay_the_same(embedder):
    naps = []
    # a CPU clock that moves 10 ms at each look: how long a text really takes varies with the CPU
    clock = itertools.count(0.0, 0.01).__next__
    paced_model = PacedEmbedder(embedder, Pacer(duty=0.25, idle=lambda: False, sleep=naps.append, clock=clock))
    vectors = paced_model.embed(TEXTS, batch_size=8)
    assert np.array_equal(vectors, embedder.embed(TEXTS, batch_size=8))
    assert naps == [pytest.approx(0.03)] * len(TEXTS)  # one text at a time, a pause after each
    assert paced_model.pacer.slept_s == pytest.approx(sum(naps))
    assert paced_model.dimension == embedder.dimension and paced_model.name == embedder.name


def test_the_pause_keeps_the_thread_to_its_share_of_a_core():
    clock = iter([0.0, 0.03, 0.03, 0.05, 0.05, 0.0505, 0.08, 0.08])  # the thread's CPU time at each look
    naps = []
    pacer = Pacer(duty=0.25, idle=lambda: False, sleep=naps.append, clock=lambda: next(clock))
    pacer.begin()
    pacer()  # 30 ms of work since it began
    pacer()  # 20 ms more
    pacer()  # half a millisecond: not worth a pause, and counted with what follows
    pacer()  # 29.5 ms more
    assert naps == [pytest.approx(0.09), pytest.approx(0.06), pytest.approx(0.09)]  # a quarter of a core


def test_each_thread_pays_for_its_own_cpu():
    naps = []
    pacer = Pacer(duty=0.5, idle=lambda: False, sleep=naps.append)

    def work():
        pacer.begin()
        deadline = time.thread_time() + 4 * SLICE_S
        while time.thread_time() < deadline:
            pass
        pacer()

    threads = [threading.Thread(target=work) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # each paid for its own few milliseconds, not for the other's or the test's
    assert len(naps) == 2 and all(4 * SLICE_S <= n < 20 * SLICE_S for n in naps)


def test_the_cpu_a_thread_ran_before_its_paced_work_is_not_paid_for():
    naps = []
    pacer = Pacer(duty=0.5, idle=lambda: False, sleep=naps.append)
    assert time.thread_time() > 20 * SLICE_S  # this thread has loaded a model and more by now
    pacer()  # a first look only starts the count
    with paced(pacer):
        deadline = time.thread_time() + 4 * SLICE_S
        while time.thread_time() < deadline:
            pass
        give_way()
    assert len(naps) == 1 and 4 * SLICE_S <= naps[0] < 20 * SLICE_S


def test_with_a_core_to_spare_it_runs_flat_out(embedder):
    naps = []
    paced_model = PacedEmbedder(embedder, Pacer(duty=0.25, idle=lambda: True, sleep=naps.append))
    assert np.array_equal(paced_model.embed(TEXTS), embedder.embed(TEXTS))
    assert naps == [] and paced_model.pacer.slept_s == 0


def test_a_duty_outside_zero_to_one_is_refused():
    with pytest.raises(ValueError, match=r"duty must be in \(0, 1\], got 0"):
        Pacer(duty=0)
    assert not Pacer(duty=1).active  # never paced


def test_give_way_calls_the_thread_s_own_pacer_only_inside_its_block():
    calls = []
    give_way()  # no pacer: nothing happens
    with paced(lambda: calls.append("outer")):
        give_way()
        with paced(lambda: calls.append("inner")):
            give_way()
        other = threading.Thread(target=give_way)  # another thread has none
        other.start()
        other.join()
        give_way()
    give_way()
    assert calls == ["outer", "inner", "outer"]
