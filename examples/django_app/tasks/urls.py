from django.urls import path

from . import views

urlpatterns = [
    path("tasks", views.start_task),
    path("tasks/<str:task_id>/stream", views.stream_task),
    path("events", views.stream_feed),
]
