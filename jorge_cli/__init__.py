"""The `jorge` command: run the platform, one service, migrations, topics and status."""
