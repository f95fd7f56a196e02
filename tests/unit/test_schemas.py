"""Event records survive encoding exactly, whatever JSON the API accepted; their ids never repeat."""

import os
import threading

from decide.events.schemas import Decision, Reward, decode, encode, new_id


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
