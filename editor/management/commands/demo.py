"""Create (or refresh) the demo account and its welcome document for local runs."""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from editor.models import Document

DEMO_USERNAME = "demo"
DEMO_PASSWORD = "tandem-demo"
DEMO_TITLE = "Welcome to Tandem"


class Command(BaseCommand):
    help = "Create the demo user (demo / tandem-demo, staff) and a demo document."

    def handle(self, *args, **options):
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
