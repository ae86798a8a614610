from connectors.forward.checkpoint import is_replay


def test_a_first_delivery_at_or_below_the_checkpoint_is_a_copy() -> None:
    assert is_replay(5, 1, 5) and is_replay(3, 1, 5)
    assert not is_replay(6, 1, 5)


def test_a_redelivery_is_sent_again_whatever_its_position() -> None:
    # Not acknowledged before (a crash, a retry): the target's idempotency covers it.
    assert not is_replay(3, 2, 5)
