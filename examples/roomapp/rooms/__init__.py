"""Group chat rooms with a bot: consumers, the bot's Celery tasks, the messages API."""
