"""Event records survive encoding exactly, whatever JSON the API accepted; their ids never repeat."""

import os
import threading

import pytest

from decide.events.schemas import Activation, Decision, DecisionHeader, Reward, decode, decode_for_join, encode, new_id


def test_integers_beyond_64_bits_come_back_as_the_floats_featurization_uses():
    decision = Decision(
        event_id="e1", loop="default", timestamp=1.5, policy_version=3,
        context=[{"big": 10**30, "nested": {"values": [1, 2**70]}}], actions=[{"id": "a", "features": [{"x": -(2**65)}]}],
        excluded=[], chosen="a", probabilities=[1.0],
    )
    decoded = decode(encode(decision))
    assert decoded.context == [{"big": float(10**30), "nested": {"values": [1, float(2**70)]}}]
    assert decoded.actions == [{"id": "a", "features": [{"x": float(-(2**65))}]}]
    assert (decoded.event_id, decoded.chosen, decoded.probabilities) == ("e1", "a", [1.0])


def test_a_reward_round_trips():
    reward = Reward("e1", 0.25, 2.0, loop="default")
    assert decode(encode(reward)) == reward


@pytest.mark.parametrize("deferred", [False, True])
def test_joining_reads_a_decision_as_its_header_and_other_records_whole(deferred):
    decision = Decision(
        event_id="e1", loop="shop", timestamp=7.25, policy_version=2, context=[{"big": 10**30, "s": "x"}],
        actions=[{"id": "a", "features": {"n": [1, 2]}}, {"id": "b"}], excluded=["b"], chosen="a",
        probabilities=[1.0, 0.0], deferred=deferred,
    )
    assert decode_for_join(encode(decision)) == DecisionHeader("e1", "shop", 7.25, deferred)
    reward, activation = Reward("e1", 0.5, 8.0), Activation("e1", 9.0, loop="shop")
    assert decode_for_join(encode(reward)) == reward
    assert decode_for_join(encode(activation)) == activation


@pytest.mark.parametrize(
    "text",
    ['{"schema": "decide.decision/9", "event_id": "e", "timestamp": 1}', '{"schema": "decide.decision/1"', "[]",
     '{"schema": "decide.decision/1", "event_id": "e", "timestamp": 1}'],
)
def test_joining_refuses_what_is_not_an_event_record(text):
    with pytest.raises(ValueError):
        decode_for_join(text)


def test_new_ids_are_128_random_bits_never_repeated_across_threads_or_a_fork():
    ids = [new_id() for _ in range(3 * 4096 // 16)]  # three reads of the system's random bytes
    out: list[str] = []
    threads = [threading.Thread(target=lambda: out.extend(new_id() for _ in range(1000))) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    read, write = os.pipe()
    child = os.fork()
    if child == 0:
        os.write(write, " ".join(new_id() for _ in range(300)).encode())
        os._exit(0)
    os.waitpid(child, 0)
    os.close(write)
    from_child = os.read(read, 1 << 16).decode().split()
    os.close(read)
    ids += out + from_child + [new_id() for _ in range(300)]
    assert len(from_child) == 300
    assert len(set(ids)) == len(ids)
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids)
