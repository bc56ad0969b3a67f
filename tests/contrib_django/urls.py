"""The test project's URLs: the admin, Django's login view, the gateway under /ai/, and two helpers the
live tests use to make and (de)activate users (a real site has sign-up pages and an admin for that)."""

from __future__ import annotations

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import include, path
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST


@csrf_exempt
@require_POST
def create_user(request: HttpRequest, username: str) -> HttpResponse:
    staff = request.GET.get("staff") == "1"
    user = User.objects.create_user(username, password=f"pw-{username}", is_staff=staff)
    return JsonResponse({"id": user.pk, "username": username})


@csrf_exempt
@require_POST
def set_active(request: HttpRequest, username: str, active: int) -> HttpResponse:
    User.objects.filter(username=username).update(is_active=bool(active))
    return JsonResponse({"username": username, "is_active": bool(active)})


def whoami(request: HttpRequest) -> HttpResponse:
    user = request.user
    return JsonResponse({"id": user.pk, "username": user.get_username() if user.is_authenticated else None})


@login_required
def console(request: HttpRequest) -> HttpResponse:
    """The console page the app ships (the example site's home extends it)."""
    return render(request, "bifrost/console.html", {"gateway": "/ai"})


urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/login/", auth_views.LoginView.as_view(template_name="admin/login.html"), name="login"),
    path("test/users/<str:username>", create_user),
    path("test/users/<str:username>/active/<int:active>", set_active),
    path("test/whoami", whoami),
    path("console/", console),
    path("ai/", include("bifrost_django.urls")),
]
