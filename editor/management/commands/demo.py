"""Create (or refresh) the demo account and its welcome document for local runs."""

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from editor.models import Document

DEMO_USERNAME = "demo"
DEMO_PASSWORD = "tandem-demo"
DEMO_TITLE = "Welcome to Tandem"


class Command(BaseCommand):
    help = "Create the demo user (demo / tandem-demo, staff) and a demo document."

    def handle(self, *args, **options):
        # The password is published in the README: a production site must never have it.
        if settings.PRODUCTION:
            raise CommandError(
                "demo creates a superuser with a published password, so it refuses to run "
                "in production (TANDEM_PRODUCTION=1); create your admin with createsuperuser"
            )
        User = get_user_model()
        user, created = User.objects.get_or_create(username=DEMO_USERNAME)
        if created or not user.check_password(DEMO_PASSWORD):
            user.set_password(DEMO_PASSWORD)
        user.is_staff = user.is_superuser = True
        user.save()
        document, _ = Document.objects.get_or_create(owner=user, title=DEMO_TITLE)
        self.stdout.write(
            f"Demo user: {DEMO_USERNAME} / {DEMO_PASSWORD}; demo document #{document.pk}"
        )
