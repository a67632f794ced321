from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from collab import views as collab_views

from . import health, monitoring, views
from .throttle import login_rate_limited

urlpatterns = [
    path("", views.document_list, name="document_list"),
    path("accounts/signup/", views.signup, name="signup"),
    # Both login pages, ahead of their apps' own routes, counted per address (throttle.py).
    path("accounts/login/", login_rate_limited(auth_views.LoginView.as_view()), name="login"),
    path("admin/login/", login_rate_limited(admin.site.login)),
    path("accounts/", include("django.contrib.auth.urls")),
    path("documents/new/", views.document_create, name="document_create"),
    path("documents/<int:document_id>/", views.document_detail, name="document_detail"),
    path("documents/<int:document_id>/rename/", views.document_rename, name="document_rename"),
    path("documents/<int:document_id>/delete/", views.document_delete, name="document_delete"),
    path("documents/<int:document_id>/share/", views.document_share, name="document_share"),
    path(
        "documents/<int:document_id>/share/<int:user_id>/remove/",
        views.document_unshare,
        name="document_unshare",
    ),
    path("documents/<int:document_id>/lock/", views.document_lock, name="document_lock"),
    path(
        "documents/<int:document_id>/live/<str:token>/",
        collab_views.post_messages,
        name="live_messages",
    ),
    path("healthz", health.healthz, name="healthz"),
    path("admin/", admin.site.urls),
]

# Monitoring (editor/monitoring.py): Prometheus's default path, and the staff page.
urlpatterns += [
    path("metrics", monitoring.prometheus_metrics, name="metrics"),
    path("staff/monitor/", monitoring.monitor, name="monitor"),
    path("staff/monitor/data.json", monitoring.monitor_data, name="monitor_data"),
]
