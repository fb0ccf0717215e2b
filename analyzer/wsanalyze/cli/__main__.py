"""``python -m wsanalyze.cli``."""

from . import main

main()
