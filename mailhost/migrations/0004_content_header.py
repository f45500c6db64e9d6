from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("mailhost", "0003_content_crlf_size"),
    ]

    operations = [
        migrations.AddField(
            model_name="content",
            name="header",
            field=models.BinaryField(blank=True, null=True),
        ),
    ]
