from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

from chat.admin import insights

urlpatterns = [
    path("admin/insights/", insights.view, name="admin_insights"),  # before the admin's catch-all
    path("admin/", admin.site.urls),
    path("", include("chat.web.urls")),
]
