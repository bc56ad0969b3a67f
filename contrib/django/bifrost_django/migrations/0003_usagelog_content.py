"""Content logging: the prompt and answer with a usage record, where it is turned on."""

from __future__ import annotations

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("bifrost", "0002_teams_customers_providers")]

    operations = [
        migrations.AddField(
            model_name="usagelog",
            name="content",
            field=models.TextField(
                blank=True, help_text="The prompt and answer, where content logging is on (JSON).", null=True
            ),
        ),
    ]
