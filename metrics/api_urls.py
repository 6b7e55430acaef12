from django.urls import path

from metrics import api

app_name = "metrics-api"

urlpatterns = [
    path("scorecards/", api.ScorecardListApi.as_view(), name="scorecards"),
    path("scorecards/recompute/", api.ScorecardRecomputeApi.as_view(), name="recompute"),
    path("tasks/<int:pk>/", api.TaskDetailApi.as_view(), name="task"),
]
