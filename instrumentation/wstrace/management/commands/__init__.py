"""`python manage.py wstrace ...`."""
