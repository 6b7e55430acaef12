from django.urls import path

from routing import api

app_name = "routing-api"

urlpatterns = [
    path("hours/", api.HoursApi.as_view(), name="hours"),
    path("promises/", api.PromisesApi.as_view(), name="promises"),
    path("availability/", api.AvailabilityApi.as_view(), name="availability"),
    path("teams/<int:pk>/routing/", api.TeamRoutingApi.as_view(), name="team-routing"),
    path("rules/", api.RulesApi.as_view(), name="rules"),
    path("rules/dry-run/", api.RuleDryRunApi.as_view(), name="rule-dry-run"),
]
