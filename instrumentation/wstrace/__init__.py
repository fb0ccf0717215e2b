"""wstrace: OpenTelemetry evidence for Django Channels WebSocket backends.

Add ``"wstrace"`` to ``INSTALLED_APPS``; optional settings go in ``WSTRACE``
(see ``wstrace.config``). Set ``WSTRACE_ENABLED=0`` to turn it off.
"""

__version__ = "0.1.0"
