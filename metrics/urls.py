from django.urls import path

from metrics import views, views_drill

app_name = "metrics"

urlpatterns = [
    path("dashboard/", views.dashboard, name="dashboard"),
    path("dashboard/drill/", views_drill.drill, name="drill"),
    path("dashboard/drill.csv", views_drill.drill_csv, name="drill_csv"),
    path("dashboard/export.csv", views_drill.scorecard_csv, name="scorecard_csv"),
    path("dashboard/integrity/", views.integrity, name="integrity"),
    path("dashboard/targets/", views.target_update, name="target_update"),
    path("dashboard/recompute/", views.recompute_start, name="recompute"),
    path("dashboard/recompute/<int:pk>/", views.recompute_progress, name="recompute_progress"),
    path("dashboard/agents/<int:pk>/", views.agent_page, name="agent"),
    path("scorecard/", views.my_scorecard, name="my_scorecard"),
]
