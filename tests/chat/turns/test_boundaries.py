"""The relay against every reading of the reference at turn boundaries (§6, open question 11), one sandbox switch
each: no frame is ever shown or stored as another turn's, and the transcript pairs every question with its answer.
"""

from __future__ import annotations

from typing import Any

import pytest

from chat.models import Message
from tests.chat.conftest import READY, connected, make_shopper, receive_until, send, stored

pytestmark = pytest.mark.django_db(transaction=True)

ASKED = ["milk", "bread", "eggs"]


async def converse(sandbox: Any, *, fail_first: bool = False) -> tuple[list[str], list[Message]]:
    """Three turns, each sent the moment the previous one is over (the socket is warm); the tab's frames per turn."""
    key, conversation = await make_shopper()
    said = []
    async with connected(key, conversation) as tab:
        for n, text in enumerate(ASKED):
            if fail_first and n == 0:
                sandbox.fail_next_turn("internal_error", after_deltas=2)
            await send(tab, kind="message", text=text, key=f"k{n}")
            said.append(await receive_until(tab, READY))
    return said, await stored(conversation)


def answers(messages: list[Message]) -> dict[str, list[str]]:
    """For each question, the skus of the cards stored after it and before the next question."""
    paired: dict[str, list[str]] = {}
    current = ""
    for message in messages:
        if message.role == "user":
            current = message.text
            paired[current] = []
        elif message.kind == Message.Kind.PRODUCT_CARDS:
            paired[current] += [item["sku"] for item in message.data.get("items", [])]
    return paired


def assert_each_turn_answered_by_its_own_reply(said: list[str], messages: list[Message], skip: int = 0) -> None:
    paired = answers(messages)
    for text in ASKED[skip:]:
        assert paired[text], f"no cards stored for {text!r}"
        assert all(sku.startswith(text[:4]) for sku in paired[text]), (text, paired[text])
    for text, frames in zip(ASKED[skip:], said[skip:], strict=True):
        assert f"/{text[:4]}" in frames  # the tab saw this turn's own cards (image paths carry the sku)
    assert "Late words" not in "".join(said)
    assert not any("Late words" in message.text for message in messages)


@pytest.mark.parametrize("completes", [False, True], ids=["error-alone", "error-then-complete"])
async def test_an_error_with_or_without_response_complete(sandbox: Any, completes: bool) -> None:
    sandbox.config.error_completes = completes
    said, messages = await converse(sandbox, fail_first=True)
    assert 'data-code="internal_error"' in said[0]
    assert_each_turn_answered_by_its_own_reply(said, messages, skip=1)
    errors = [m for m in messages if m.kind == Message.Kind.ERROR]
    assert [m.text for m in errors] == ["internal_error"]
    assert [m.seq for m in messages if m.role == "user"] == sorted(m.seq for m in messages if m.role == "user")


async def test_response_complete_twice(sandbox: Any) -> None:
    sandbox.config.complete_twice = True
    said, messages = await converse(sandbox)
    assert_each_turn_answered_by_its_own_reply(said, messages)


async def test_a_block_after_response_complete(sandbox: Any) -> None:
    sandbox.config.block_after_complete = True
    said, messages = await converse(sandbox)
    assert_each_turn_answered_by_its_own_reply(said, messages)
    replies = [m for m in messages if m.role == "assistant" and m.kind == Message.Kind.TEXT]
    assert len(replies) == len(ASKED)


async def test_every_rich_frame_repeated(sandbox: Any) -> None:
    sandbox.config.repeat_frames = True
    said, messages = await converse(sandbox)
    assert_each_turn_answered_by_its_own_reply(said, messages)
    cards = [m for m in messages if m.kind == Message.Kind.PRODUCT_CARDS]
    assert len(cards) == len(ASKED)  # one card list per turn, not two


async def test_a_late_response_complete(sandbox: Any) -> None:
    sandbox.config.late_complete_seconds = 0.3
    said, messages = await converse(sandbox)
    assert_each_turn_answered_by_its_own_reply(said, messages)
