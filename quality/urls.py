from django.urls import path

from quality import views

app_name = "quality"

urlpatterns = [
    path("qa/", views.qa_home, name="qa_home"),
    path("qa/reviews/<int:pk>/", views.qa_review, name="qa_review"),
    path("qa/reviews/<int:pk>/submit/", views.qa_review_submit, name="qa_review_submit"),
    path("qa/reviews/<int:pk>/respond/", views.qa_review_respond, name="qa_review_respond"),
    path("qa/reviews/<int:pk>/replace/", views.qa_review_replace, name="qa_review_replace"),
    path("qa/rubric/", views.qa_rubric, name="qa_rubric"),
    path("qa/calibrations/", views.qa_calibrations, name="qa_calibrations"),
    path("qa/calibrations/<int:pk>/", views.qa_calibration, name="qa_calibration"),
    path("qa/disagreements/", views.qa_disagreements, name="qa_disagreements"),
    path("ideas/", views.ideas, name="ideas"),
    path("ideas/<int:pk>/", views.idea_detail, name="idea_detail"),
    path("ideas/<int:pk>/status/", views.idea_status, name="idea_status"),
    path("ideas/<int:pk>/notify/", views.idea_notify, name="idea_notify"),
    path("ideas/log/<int:message_id>/", views.idea_log, name="idea_log"),
    path("cancellations/", views.cancellations, name="cancellations"),
    path("cancellations/reasons/", views.cancellation_reasons, name="cancellation_reasons"),
    path(
        "conversations/<int:conversation_id>/cancellation/",
        views.cancellation_record,
        name="cancellation_record",
    ),
    path("checkins/", views.checkins, name="checkins"),
    path("checkins/<int:pk>/", views.checkin_act, name="checkin_act"),
    path("checkins/rules/<int:pk>/", views.checkin_rule, name="checkin_rule"),
    path("pulse/", views.pulse, name="pulse"),
]
