from django.contrib import admin
from django.urls import path
from django.views.generic import RedirectView

from .health import healthz

urlpatterns = [
    # Until the webmail exists, the front page is the admin.
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
    path("healthz", healthz, name="healthz"),
    path("admin/", admin.site.urls),
]
