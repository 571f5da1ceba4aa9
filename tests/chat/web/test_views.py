"""The chat page's view: what it hands the page's scripts."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import override_settings


@pytest.mark.django_db
@override_settings(VIZOCHOK_PAGE_HEARTBEAT_INTERVAL=1.5, VIZOCHOK_PAGE_HEARTBEAT_TIMEOUT=2)
def test_the_page_gets_its_heartbeat_in_milliseconds(client: Any) -> None:
    html = client.get("/?lang=en").content.decode()
    assert 'data-heartbeat-interval="1500"' in html
    assert 'data-heartbeat-timeout="2000"' in html
