"""Reply feedback (issue 25): a shopper's rating of a finished reply, one per reply and shopper."""

import django.db.models.deletion
import django.utils.timezone
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("chat", "0007_turn_misses"),
    ]

    operations = [
        migrations.CreateModel(
            name="Feedback",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("seq", models.PositiveIntegerField(verbose_name="message number")),
                ("user_id", models.CharField(max_length=200, verbose_name="shopper id")),
                ("store_id", models.CharField(max_length=100, verbose_name="store")),
                (
                    "value",
                    models.CharField(
                        choices=[("up", "helpful"), ("down", "not helpful")], max_length=4, verbose_name="rating"
                    ),
                ),
                (
                    "reason",
                    models.CharField(
                        blank=True,
                        choices=[
                            ("wrong_products", "wrong products"),
                            ("wrong_price", "wrong price or amount"),
                            ("not_understood", "did not understand"),
                            ("other", "other"),
                        ],
                        max_length=20,
                        verbose_name="reason",
                    ),
                ),
                ("text", models.CharField(blank=True, max_length=500, verbose_name="shopper's comment")),
                ("day", models.DateField(verbose_name="day")),
                ("rated_at", models.DateTimeField(default=django.utils.timezone.now, verbose_name="rated")),
                (
                    "conversation",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="feedback",
                        to="chat.conversation",
                        verbose_name="conversation",
                    ),
                ),
                (
                    "message",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="feedback",
                        to="chat.message",
                        verbose_name="reply",
                    ),
                ),
            ],
            options={
                "verbose_name": "reply rating",
                "verbose_name_plural": "reply ratings",
                "indexes": [
                    models.Index(fields=["day", "value", "reason", "store_id"], name="feedback_day"),
                    models.Index(fields=["value", "day", "rated_at", "store_id"], name="feedback_latest"),
                    models.Index(fields=["conversation", "value"], name="feedback_conversation"),
                ],
                "constraints": [models.UniqueConstraint(fields=("message", "user_id"), name="feedback_one_per_reply")],
            },
        ),
    ]
