"""The cart count is the number of cart lines, not the sum of quantities (kilograms were added to pieces)."""

from __future__ import annotations

from typing import Any

from django.db import migrations, models


def count_lines(apps: Any, schema_editor: Any) -> None:
    Conversation = apps.get_model("chat", "Conversation")
    changed = []
    for conversation in Conversation.objects.only("pk", "cart", "cart_count").iterator(chunk_size=500):
        lines = conversation.cart if isinstance(conversation.cart, list) else []
        count = sum(1 for line in lines if isinstance(line, dict))
        if conversation.cart_count != count:
            conversation.cart_count = count
            changed.append(conversation)
    Conversation.objects.bulk_update(changed, ["cart_count"], batch_size=500)


class Migration(migrations.Migration):
    dependencies = [("chat", "0005_hardening")]

    operations = [
        migrations.AlterField(model_name="conversation", name="cart_count", field=models.PositiveIntegerField(default=0, verbose_name="lines in cart")),
        migrations.RunPython(count_lines, migrations.RunPython.noop),
    ]
