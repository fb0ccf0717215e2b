"""`python manage.py wstrace doctor [--json] [--timeout S] [--celery-app MOD] [--only NAME ...]`.

Runs the checklist of `wstrace.doctor` with this project's settings. Exit status 1
only when a check fails: warnings and skips alone exit 0, so CI can gate on FAILs.
`wsanalyze doctor` runs this command in a subprocess and reads its `--json` output.
"""

from __future__ import annotations

import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from wstrace.doctor import CHECK_NAMES


class Command(BaseCommand):
    help = "wstrace tools. `doctor`: check Redis, the channel layer, ASGI routing, origins, Celery and wstrace."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        doctor = sub.add_parser("doctor", help="run the checklist")
        doctor.add_argument("--json", action="store_true", help="machine-readable output")
        doctor.add_argument("--timeout", type=float, default=5.0, help="seconds per network check")
        doctor.add_argument("--celery-app", default=None, help="module[:attr] of the Celery app")
        doctor.add_argument(
            "--processes",
            type=int,
            default=None,
            help="processes sharing the layer (default: 2 when Celery is configured)",
        )
        doctor.add_argument(
            "--only",
            nargs="*",
            default=(),
            metavar="CHECK",
            help="run only these checks: " + ", ".join(CHECK_NAMES),
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["action"] != "doctor":
            raise CommandError(f"unknown action {options['action']!r}")
        from wstrace import doctor

        unknown = set(options["only"]) - set(doctor.CHECK_NAMES)
        if unknown:
            raise CommandError(f"unknown check(s): {', '.join(sorted(unknown))}")
        opts = doctor.Options(
            timeout=options["timeout"],
            celery_app=options["celery_app"],
            processes=options["processes"],
            only=tuple(options["only"]),
        )
        report = doctor.run_checks(opts)
        if options["json"]:
            self.stdout.write(doctor.to_json(report))
        else:
            for line in doctor.render_text(report):
                self.stdout.write(line)
        self.stdout.flush()
        if any(c["status"] == doctor.FAIL for c in report["checks"]):
            sys.exit(1)
