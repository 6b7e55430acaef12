"""The embeddable chat widget of a chat channel (namespace "widget")."""

from django.urls import path

from tickets import views_chat

app_name = "widget"

urlpatterns = [
    path("widget/<str:key>.js", views_chat.widget_script, name="script"),
    path("widget/<str:key>/", views_chat.widget_chat_page, name="chat"),
    path("widget/<str:key>/transcript/", views_chat.widget_transcript, name="transcript"),
    path("widget/<str:key>/end/", views_chat.widget_end, name="end"),
]
