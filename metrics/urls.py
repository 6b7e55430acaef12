from django.urls import path

from metrics import views, views_qa

app_name = "metrics"

urlpatterns = [
    # --- Scorecards and dashboard (issue 5) --------------------------------------------------------
    path("dashboard/", views.dashboard, name="dashboard"),
    path("dashboard/drill/", views.drill, name="drill"),
    path("dashboard/drill.csv", views.drill_csv, name="drill_csv"),
    path("dashboard/export.csv", views.scorecard_csv, name="scorecard_csv"),
    path("dashboard/integrity/", views.integrity, name="integrity"),
    path("dashboard/targets/", views.target_update, name="target_update"),
    path("dashboard/recompute/", views.recompute_start, name="recompute"),
    path("dashboard/recompute/<int:pk>/", views.recompute_progress, name="recompute_progress"),
    path("dashboard/agents/<int:pk>/", views.agent_page, name="agent"),
    path("scorecard/", views.my_scorecard, name="my_scorecard"),
    # --- QA, ideas, cancellations, check-ins, pulse (issue 6) ------------------------------------
    path("qa/", views_qa.qa_home, name="qa_home"),
    path("qa/reviews/<int:pk>/", views_qa.qa_review, name="qa_review"),
    path("qa/reviews/<int:pk>/submit/", views_qa.qa_review_submit, name="qa_review_submit"),
    path("qa/reviews/<int:pk>/respond/", views_qa.qa_review_respond, name="qa_review_respond"),
    path("qa/reviews/<int:pk>/replace/", views_qa.qa_review_replace, name="qa_review_replace"),
    path("qa/rubric/", views_qa.qa_rubric, name="qa_rubric"),
    path("qa/calibrations/", views_qa.qa_calibrations, name="qa_calibrations"),
    path("qa/calibrations/<int:pk>/", views_qa.qa_calibration, name="qa_calibration"),
    path("qa/disagreements/", views_qa.qa_disagreements, name="qa_disagreements"),
    path("ideas/", views_qa.ideas, name="ideas"),
    path("ideas/<int:pk>/", views_qa.idea_detail, name="idea_detail"),
    path("ideas/<int:pk>/status/", views_qa.idea_status, name="idea_status"),
    path("ideas/<int:pk>/notify/", views_qa.idea_notify, name="idea_notify"),
    path("ideas/log/<int:message_id>/", views_qa.idea_log, name="idea_log"),
    path("cancellations/", views_qa.cancellations, name="cancellations"),
    path("cancellations/reasons/", views_qa.cancellation_reasons, name="cancellation_reasons"),
    path(
        "conversations/<int:conversation_id>/cancellation/",
        views_qa.cancellation_record,
        name="cancellation_record",
    ),
    path("checkins/", views_qa.checkins, name="checkins"),
    path("checkins/<int:pk>/", views_qa.checkin_act, name="checkin_act"),
    path("checkins/rules/<int:pk>/", views_qa.checkin_rule, name="checkin_rule"),
    path("pulse/", views_qa.pulse, name="pulse"),
]
