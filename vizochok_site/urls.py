from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

from chat.admin import insights, now
from chat.ops.staticfiles import favicon

urlpatterns = [
    path("admin/insights/", insights.view, name="admin_insights"),  # before the admin's catch-all
    path("admin/insights/now/", now.now_view, name="admin_insights_now"),
    path("admin/", admin.site.urls),
    path("favicon.ico", favicon, name="favicon"),
    path("", include("chat.web.urls")),
]
