"""Channels instrumentation: the ASGI edge, consumers and channel layers."""
