from django.apps import AppConfig


class NotesConfig(AppConfig):
    name = "notes"

    def ready(self) -> None:
        from . import celery  # noqa: F401  (the Celery app, as a project's __init__ loads it)
