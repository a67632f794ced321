from django.apps import AppConfig


class EditorConfig(AppConfig):
    name = "editor"
    verbose_name = "Documents"

    def ready(self):
        from . import revocation  # noqa: F401  (connects the signals that end access)
