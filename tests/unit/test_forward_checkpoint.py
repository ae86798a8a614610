from connectors.forward.checkpoint import is_replay
from connectors.forward.lowwater import LowWaterMark


def test_a_first_delivery_of_a_position_dealt_with_is_a_copy() -> None:
    mark = LowWaterMark(5, [(8, 9)])
    assert is_replay(5, 1, mark) and is_replay(3, 1, mark) and is_replay(9, 1, mark)
    assert not is_replay(6, 1, mark) and not is_replay(10, 1, mark)


def test_a_position_overtaken_by_later_ones_is_sent_when_it_comes() -> None:
    # 7 awaited its redelivery while 8 and 9 were forwarded: the highest
    # position dealt with is 9, yet 7 is no copy.
    mark = LowWaterMark(6, [(8, 9)])
    assert not is_replay(7, 1, mark)


def test_a_redelivery_is_sent_again_whatever_its_position() -> None:
    # Not acknowledged before (a crash, a retry): the target's idempotency covers it.
    assert not is_replay(3, 2, LowWaterMark(5))
