"""Keypad entries and the silent-caller policy (pure, time passed in)."""

from agent.call.turns.idle import IdlePolicy
from agent.call.turns.keypad import MAX_DIGITS, Keypad


def test_hash_ends_an_entry_at_once():
    k = Keypad(gap_s=2.0)
    assert [k.press(d, 1.0 + i * 0.1) for i, d in enumerate("1234")] == [None] * 4
    assert k.typing
    assert k.press("#", 1.5) == "1234" and not k.typing


def test_a_gap_ends_an_entry_and_star_clears_it():
    k = Keypad(gap_s=2.0)
    k.press("9", 0.0)
    k.press("*", 0.5)
    k.press("1", 1.0)
    k.press("2", 1.2)
    assert k.tick(3.1) is None
    assert k.tick(3.2) == "12"
    assert k.tick(10.0) is None


def test_a_flood_cannot_grow_the_buffer():
    k = Keypad()
    for i in range(10_000):
        k.press("5", i * 0.001)
    assert k.press("#", 11.0) == "5" * MAX_DIGITS


def test_idle_caller_gets_each_prompt_in_turn_then_give_up():
    idle = IdlePolicy(timeout_s=5.0, prompts=("a", "b"))
    idle.activity(0.0)
    assert idle.tick(4.9) is None
    assert idle.tick(5.0).prompt == "a"
    idle.busy(6.0)  # the prompt played: its own silence does not count, the count stays
    assert idle.tick(10.9) is None
    assert idle.tick(11.0).prompt == "b"
    assert idle.tick(16.0).give_up


def test_caller_activity_resets_the_prompts():
    idle = IdlePolicy(timeout_s=5.0, prompts=("a", "b"))
    idle.activity(0.0)
    assert idle.tick(5.0).prompt == "a"
    idle.activity(6.0)
    assert idle.tick(11.0).prompt == "a"
