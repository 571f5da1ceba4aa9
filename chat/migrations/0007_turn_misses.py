"""A miss ("queries without products") is a turn that showed no product, no checklist and changed no cart.

Turns recorded before these columns are filled in from their stored messages: the checklist or cart change that
came between the turn's message and the shopper's next one.
"""

from __future__ import annotations

from typing import Any

from django.db import migrations, models


def backfill(apps: Any, schema_editor: Any) -> None:
    Turn = apps.get_model("chat", "Turn")
    Message = apps.get_model("chat", "Message")
    quote = schema_editor.connection.ops.quote_name
    turns, messages = quote(Turn._meta.db_table), quote(Message._meta.db_table)

    def shown(kind: str) -> str:
        return (
            f"EXISTS (SELECT 1 FROM {messages} AS m WHERE m.conversation_id = {turns}.conversation_id "
            f"AND m.kind = '{kind}' AND m.seq > {turns}.seq AND m.seq < COALESCE((SELECT MIN(n.seq) FROM {messages} "
            f"AS n WHERE n.conversation_id = {turns}.conversation_id AND n.role = 'user' AND n.seq > {turns}.seq), "
            "2147483647))"
        )

    schema_editor.execute(
        f"UPDATE {turns} SET had_checklist = {shown('checklist')}, cart_changed = (cart_adds > 0 OR {shown('cart')}) "
        "WHERE outcome = 'answered' AND NOT had_cards AND NOT (query = '')"
    )


class Migration(migrations.Migration):
    dependencies = [("chat", "0006_cart_lines")]

    operations = [
        migrations.RemoveIndex(model_name="turn", name="turn_day_unmatched"),
        migrations.AddField(
            model_name="turn",
            name="cart_changed",
            field=models.BooleanField(default=False, verbose_name="changed the cart"),
        ),
        migrations.AddField(
            model_name="turn",
            name="had_checklist",
            field=models.BooleanField(default=False, verbose_name="showed a checklist"),
        ),
        migrations.RunPython(backfill, migrations.RunPython.noop),
        migrations.AddIndex(
            model_name="turn",
            index=models.Index(
                condition=models.Q(
                    ("cart_changed", False),
                    ("had_cards", False),
                    ("had_checklist", False),
                    ("outcome", "answered"),
                    models.Q(("query", ""), _negated=True),
                ),
                fields=["day", "store_id", "query"],
                name="turn_day_unmatched",
            ),
        ),
    ]
