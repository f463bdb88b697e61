"""The channel rules every adapter shares: what each mode does with a message, and the allowlists."""

from __future__ import annotations

import pytest

from bot.runtime.channels import Allowlist, ChannelMode, Reach, parse_ids, reach


@pytest.mark.parametrize(
    ("mode", "addressed", "expected"),
    [
        ("off", True, Reach(answer=False)),
        ("off", False, Reach(answer=False)),
        ("mention", True, Reach(answer=True)),
        ("mention", False, Reach(answer=False)),
        ("always", False, Reach(answer=True)),
        ("listen", True, Reach(answer=True)),
        ("listen", False, Reach(answer=False, remember=True)),
        ("LISTEN", False, Reach(answer=False, remember=True)),
    ],
)
def test_each_mode(mode: str, addressed: bool, expected: Reach) -> None:
    assert reach(mode, addressed=addressed, in_dm=False) == expected


def test_a_dm_is_always_answered_and_an_unknown_mode_is_named() -> None:
    assert reach(ChannelMode.OFF, addressed=False, in_dm=True) == Reach(answer=True)
    with pytest.raises(ValueError, match="use one of off, mention, always, listen"):
        ChannelMode.parse("sometimes")


def test_allowlists() -> None:
    anyone = Allowlist()
    assert anyone.permits(channel_id="C1", user_id="U1", in_dm=False)
    only = Allowlist(parse_ids("C1, C2"), parse_ids("U1 U2"))
    assert only.permits(channel_id="C2", user_id="U1", in_dm=False)
    assert not only.permits(channel_id="C3", user_id="U1", in_dm=False)
    assert only.permits(channel_id="T9", user_id="U1", in_dm=False, parent_id="C1"), "a thread of an allowed channel"
    assert only.permits(channel_id="D7", user_id="U2", in_dm=True), "DMs are not channels"
    assert not only.permits(channel_id="D7", user_id="U3", in_dm=True)
