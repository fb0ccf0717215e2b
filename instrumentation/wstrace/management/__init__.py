"""Django management commands of wstrace."""
