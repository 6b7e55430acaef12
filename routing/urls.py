from django.urls import path

from routing import views

app_name = "routing"

urlpatterns = [
    path("settings/hours/", views.hours_page, name="hours"),
    path("settings/rules/", views.rules_page, name="rules"),
    path("settings/rules/<int:pk>/", views.rules_page, name="rule"),
    path("settings/rules/<int:pk>/action/", views.rule_action, name="rule-action"),
    path("availability/", views.availability_page, name="availability"),
]
