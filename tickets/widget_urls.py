"""The embeddable chat widget of a chat channel (namespace "widget")."""

from django.urls import path

from tickets import views

app_name = "widget"

urlpatterns = [
    path("widget/<str:key>.js", views.widget_script, name="script"),
    path("widget/<str:key>/", views.widget_chat_page, name="chat"),
    path("widget/<str:key>/transcript/", views.widget_transcript, name="transcript"),
    path("widget/<str:key>/end/", views.widget_end, name="end"),
]
