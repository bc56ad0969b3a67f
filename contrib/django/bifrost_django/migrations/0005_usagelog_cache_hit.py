"""Response caching: a usage record says when the answer came from the cache, and how it matched."""

from __future__ import annotations

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("bifrost", "0004_counter_held")]

    operations = [
        migrations.AddField(
            model_name="usagelog",
            name="cache_hit",
            field=models.CharField(
                blank=True,
                help_text="direct or semantic: answered by the response cache.",
                max_length=16,
                null=True,
            ),
        ),
    ]
