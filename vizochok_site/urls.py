from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

from chat.admin import insights
from chat.ops.staticfiles import favicon

urlpatterns = [
    path("admin/insights/", insights.view, name="admin_insights"),  # before the admin's catch-all
    path("admin/", admin.site.urls),
    path("favicon.ico", favicon, name="favicon"),
    path("", include("chat.web.urls")),
]
