"""The chat + agent app: a WebSocket consumer and the Celery task streaming answers."""
