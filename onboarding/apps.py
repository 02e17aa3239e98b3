from importlib import import_module

from django.apps import AppConfig
from django.conf import settings


class OnboardingConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "onboarding"

    def ready(self) -> None:
        # Importing a handler module registers its @automated_step functions.
        for module in settings.AUTOMATION_HANDLER_MODULES:
            import_module(module)
