"""SQLite's latency percentiles (chat.admin.insights.latency): each metric's values of a day in value order."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("chat", "0008_feedback"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="turn",
            index=models.Index(
                condition=models.Q(("first_token_ms__isnull", False)),
                fields=["day", "first_token_ms", "store_id"],
                name="turn_day_first_token",
            ),
        ),
        migrations.AddIndex(
            model_name="turn",
            index=models.Index(
                condition=models.Q(("duration_ms__isnull", False)),
                fields=["day", "duration_ms", "store_id"],
                name="turn_day_duration",
            ),
        ),
    ]
