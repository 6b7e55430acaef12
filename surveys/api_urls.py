from django.urls import path

from surveys import api

app_name = "surveys-api"

urlpatterns = [
    path("surveys/responses/", api.SurveyResponseListApi.as_view(), name="response-list"),
]
