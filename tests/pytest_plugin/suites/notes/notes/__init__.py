"""A small user project: notes streamed back by a Celery task over the in-memory channel layer."""
