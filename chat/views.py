from __future__ import annotations

from django.http import HttpRequest, HttpResponse


def chat_page(request: HttpRequest) -> HttpResponse:
    return HttpResponse("")
