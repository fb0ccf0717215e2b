"""The example chat app on the real stack: every fault switch, as the client sees it."""
