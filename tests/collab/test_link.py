"""The judge of the channel-layer link: beats heard, missed, failed."""

from collab.link import LOST, MISSED, RESTORED, Link


def test_a_link_whose_beats_come_back_stays_up():
    link = Link(now=0.0, timeout=3)
    for n in range(1, 10):
        assert link.heard_back(link.beat(), now=float(n)) is None
        assert link.check(now=n + 0.5) is None
    assert link.up


def test_no_beat_back_for_the_timeout_is_a_lost_link_once():
    link = Link(now=0.0, timeout=3)
    link.beat()
    assert link.check(now=2.9) is None
    assert link.check(now=3.1) == LOST
    assert not link.up
    assert link.check(now=9.0) is None  # still lost, not lost again


def test_a_failed_send_is_a_lost_link_and_the_next_beat_back_restores_it():
    link = Link(now=0.0)
    assert link.failed() == LOST
    assert link.failed() is None
    assert link.heard_back(link.beat(), now=1.0) == RESTORED
    assert link.up


def test_beats_missing_between_two_heard_is_a_loss_and_recovery_in_one():
    link = Link(now=0.0, timeout=3)
    assert link.heard_back(link.beat(), now=1.0) is None
    link.beat()  # dropped by the layer, a restart quicker than the timeout
    assert link.heard_back(link.beat(), now=2.0) == MISSED
    assert link.up
