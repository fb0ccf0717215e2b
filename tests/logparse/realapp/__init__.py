"""A tiny real ASGI app and Celery app whose Daphne/Celery/Redis output the parser tests read."""
