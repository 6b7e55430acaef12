"""The start page: the agent's queue at "/", under the project-wide URL name "home"."""

from django.urls import path

from tickets import views

urlpatterns = [
    path("", views.queue, name="home"),
]
