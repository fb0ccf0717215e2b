"""wsanalyze: rebuild a conversation's timeline from wstrace evidence and say where messages died."""

__version__ = "0.1.0"
