"""Run the example chat app on a real stack and talk to it (``stack``, ``client``)."""
