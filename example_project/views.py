"""The one page of the example site: the signed-in user's keys, usage and a streaming prompt."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse


@login_required
def home(request: HttpRequest) -> HttpResponse:
    gateway = reverse("bifrost:gateway", kwargs={"subpath": ""}).rstrip("/")  # "/ai"
    return render(request, "example/home.html", {"gateway": gateway})
