"""Spent entry tokens, and the ``ext-`` namespace for the shoppers hosts' tokens vouch for (issue 15)."""

from __future__ import annotations

from typing import Any

from django.db import migrations, models
from django.db.models import Q
from django.db.models.functions import Concat

#: The prefixes of this site's own shoppers (Django users, anonymous ids) and of hosts' shoppers.
OWN = ("user-", "anon-")
HOST = "ext-"


def host_ids_into_their_namespace(apps: Any, schema_editor: Any) -> None:
    """Conversations of token-bound shoppers carried the host's raw id; they get the ``ext-`` prefix.

    Every id that is not one of this site's own (``user-``, ``anon-``) came from a token. A token that named
    ``user-…`` or ``anon-…`` before this fix cannot be told from this site's own shopper and is left as it is.
    """
    Conversation = apps.get_model("chat", "Conversation")
    own = Q()
    for prefix in OWN:
        own |= Q(user_id__startswith=prefix)
    Conversation.objects.exclude(own).update(user_id=Concat(models.Value(HOST), "user_id"))


def host_ids_back(apps: Any, schema_editor: Any) -> None:
    Conversation = apps.get_model("chat", "Conversation")
    for conversation in Conversation.objects.filter(user_id__startswith=HOST).only("pk", "user_id"):
        Conversation.objects.filter(pk=conversation.pk).update(user_id=conversation.user_id.removeprefix(HOST))


class Migration(migrations.Migration):
    dependencies = [
        ("chat", "0004_admin_labels"),
    ]

    operations = [
        migrations.CreateModel(
            name="SpentEntryToken",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("jti", models.CharField(max_length=128, unique=True)),
                ("expires_at", models.DateTimeField(db_index=True)),
            ],
        ),
        migrations.RunPython(host_ids_into_their_namespace, host_ids_back),
    ]
