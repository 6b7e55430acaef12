from django.urls import path

from surveys import settings_views, views

app_name = "surveys"

urlpatterns = [
    path("s/<str:token>/", views.survey_page, name="survey"),
    path("s/<str:token>/inline/", views.survey_inline, name="inline"),
    path("s/<str:token>/opened/", views.survey_opened, name="opened"),
    path("s/<str:token>/unsubscribe/", views.survey_unsubscribe, name="unsubscribe"),
    path("surveys/responses/", views.response_list, name="responses"),
    path("surveys/me/", views.my_feedback, name="my_feedback"),
    path("surveys/follow-ups/", views.follow_up_list, name="follow_ups"),
    path("surveys/follow-ups/<int:pk>/close/", views.follow_up_close, name="follow_up_close"),
    path("settings/surveys/", settings_views.survey_settings_edit, name="settings"),
    path("settings/survey-page/", views.survey_wording_edit, name="wording"),
    path("settings/survey-page/preview/", views.survey_wording_preview, name="wording_preview"),
]
