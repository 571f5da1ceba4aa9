"""The "Now" panel of the insights page (issue 25): turns streaming, turns in line and upstream sockets in use,
read by an admin-only endpoint the page polls. Real turns through the relay and the sandbox on loopback; with
Redis the numbers are the shared sets', so they count every process."""

from __future__ import annotations

import os
import re
from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth.models import Permission, User
from django.test import AsyncClient, Client
from django.urls import reverse

from tests.chat.conftest import connected, make_shopper, receive_until, send
from tests.processes import redis_url

pytestmark = pytest.mark.django_db(transaction=True)

URL = reverse("admin_insights_now")
REDIS_URL = redis_url()


@database_sync_to_async
def staff_client(*perms: str) -> AsyncClient:
    user = User.objects.create_user(f"staff-{len(perms)}", is_staff=True)
    for codename in perms:
        user.user_permissions.add(Permission.objects.get(codename=codename, content_type__app_label="chat"))
    sync = Client()
    sync.force_login(user)
    client = AsyncClient()
    client.cookies = sync.cookies
    return client


def numbers(html: str) -> dict[str, str]:
    return dict(re.findall(r'data-now="(\w+)">([^<]+)<', html))


async def test_only_staff_who_may_read_conversations(caplog: pytest.LogCaptureFixture) -> None:
    assert (await AsyncClient().get(URL)).status_code == 403
    # Anybody may ask, as often as they like: each refusal is one line in the log, never a traceback.
    assert [record.exc_info for record in caplog.records if record.name == "django.request"] == [None]
    assert (await (await staff_client()).get(URL)).status_code == 403
    response = await (await staff_client("view_conversation")).get(URL)
    assert response.status_code == 200 and "no-cache" in response["Cache-Control"]


@pytest.mark.parametrize("redis", [False, True], ids=["one process", "redis"])
async def test_streaming_waiting_and_sockets_now(sandbox: Any, settings: Any, redis: bool) -> None:
    if redis:
        pytest.importorskip("redis")
        from redis.asyncio import Redis

        client = Redis.from_url(REDIS_URL)
        try:
            await client.ping()
        except Exception as exc:
            pytest.skip(f"Redis is not reachable at {REDIS_URL}: {exc}")
        finally:
            await client.aclose()
        settings.REDIS_URL = REDIS_URL
        settings.VIZOCHOK_API_KEY = f"sk_test_now_{os.getpid()}"  # a slot set of this test's own
    settings.VIZOCHOK_MAX_CONNECTIONS = 1
    settings.VIZOCHOK_QUEUE_TIMEOUT = 10
    viewer = await staff_client("view_conversation")
    assert numbers((await viewer.get(URL)).content.decode()) == {"streaming": "0", "waiting": "0", "sockets": "0 з 1"}

    first_key, first = await make_shopper("anon-first")
    second_key, second = await make_shopper("anon-second")
    sandbox.pause_turns()
    async with connected(first_key, first) as one, connected(second_key, second) as two:
        await send(one, kind="message", text="milk", key="a")
        await receive_until(one, "-text")  # streaming, holding the only socket
        await send(two, kind="message", text="bread", key="b")
        await receive_until(two, 'data-position="1"')  # first in line for it
        page = (await viewer.get(URL)).content.decode()
        assert numbers(page) == {"streaming": "1", "waiting": "1", "sockets": "1 з 1"}
        sandbox.resume_turns()
        await receive_until(two, 'data-state="ready"', timeout=10)
    page = (await viewer.get(URL)).content.decode()
    assert numbers(page)["streaming"] == "0" and numbers(page)["waiting"] == "0"
