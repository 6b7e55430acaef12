from django.urls import path  # noqa: F401

app_name = "surveys-api"

urlpatterns: list = []
