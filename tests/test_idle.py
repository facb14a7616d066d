"""Spare-core detection from /proc/stat's idle time (pure logic over a fake stat file)."""

import pytest

from search.retrieval import idle


def _stat(path, idle_ticks, iowait=0):
    path.write_text(f"cpu  500 0 100 {idle_ticks} {iowait} 0 0 0 0 0\ncpu0 1 2 3 4 5 6 7 8 9 10\n")


@pytest.fixture
def clock(monkeypatch):
    now = [100.0]
    monkeypatch.setattr(idle.time, "monotonic", lambda: now[0])
    return now


def test_a_core_is_spare_when_the_window_saw_one_idle(tmp_path, clock, monkeypatch):
    stat = tmp_path / "stat"
    _stat(stat, 1000)
    cores = idle.IdleCores(str(stat))
    tick = cores._tick
    clock[0] += 0.2
    _stat(stat, 1000 + int(0.2 * tick * 0.9), iowait=int(0.2 * tick * 0.1))  # one core idle or waiting
    assert cores.spare()
    clock[0] += 0.2
    _stat(stat, 1000 + int(0.2 * tick) + int(0.2 * tick * 0.1))  # then barely idle: busy
    assert not cores.spare()
    clock[0] += idle.WINDOW_S / 2
    _stat(stat, 10**6)  # within the window the last answer holds
    assert not cores.spare()


def test_without_proc_stat_nothing_is_spare(tmp_path):
    with pytest.raises(OSError):
        idle.IdleCores(str(tmp_path / "missing"))
