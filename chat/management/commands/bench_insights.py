"""``manage.py bench_insights``: time the admin insights (and the conversation list) on this database.

Each page is requested through the whole Django stack (middleware, session, admin, template) as a temporary
superuser, a few times after one warm-up request; the report gives the fastest and the median wall time, the
number of SQL queries and their total time. The pages' budget is one second (issue 17); a slower page makes the
command exit with status 1. Timing lives here, not in the tests: a shared CI machine's timings prove nothing.

``--database-url`` runs the same measurement against another database (a subprocess with that ``DATABASE_URL``);
``--seed`` first fills an empty database with ``seed_demo_conversations`` (``--conversations``, ``--messages``).
Typical: ``manage.py bench_insights --seed --conversations 100000 --messages 1000000`` on a fresh SQLite file,
then the same with ``--database-url postgresql://…/an_empty_database``. ``--seed`` rates ``--rated`` (10 %) of the
messages (finished replies only), so the ratings charts and the rating filter are measured at volume too.

``--export`` adds the export phase (issue 25): a real Daphne process on this database streams the whole table as
CSV and as JSON through the admin's export action; the report gives the time to the first byte, the whole time and
how much the process grew (its peak resident memory during the export over its size just before). The budget is a
first byte within a second and less than 50 MiB of growth.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from argparse import ArgumentParser
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from chat.models import Conversation, Message, Turn

BUDGET = 1.0
BENCH_USER = "bench-insights"


def scenarios() -> list[tuple[str, str, dict[str, str]]]:
    """(name, url, query) of each page measured; the insights over every period, then the list."""
    insights = reverse("admin_insights")
    changelist = reverse("admin:chat_conversation_changelist")
    first_store = Conversation.objects.order_by("store_id").values_list("store_id", flat=True).first() or ""
    return [
        ("insights: today", insights, {"period": "today"}),
        ("insights: 7 days", insights, {"period": "7"}),
        ("insights: 30 days", insights, {"period": "30"}),
        ("insights: 30 days, one store", insights, {"period": "30", "store": first_store}),
        ("insights: 90 days", insights, _last_days(90)),
        ("insights: 366 days", insights, _last_days(366)),
        ("insights: CSV of a chart, 30 days", insights, {"period": "30", "csv": "errors"}),
        ("conversation list", changelist, {}),
        ("conversation list: search «Молоко»", changelist, {"q": "Молоко"}),
        ("conversation list: rated not helpful", changelist, {"rating": "down"}),
        ("insights: ratings CSV, 30 days", insights, {"period": "30", "csv": "ratings"}),
    ]


def _last_days(days: int) -> dict[str, str]:
    from datetime import timedelta

    from django.utils import timezone

    today = timezone.localdate()
    return {"period": "custom", "start": (today - timedelta(days=days - 1)).isoformat(), "end": today.isoformat()}


class Command(BaseCommand):
    help = "Time the admin insights and the conversation list (wall time, SQL queries) on this database."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--database-url", default="", help="measure this database instead (a subprocess)")
        parser.add_argument("--repeat", type=int, default=5, help="timed requests per page, after one warm-up (5)")
        parser.add_argument("--budget", type=float, default=BUDGET, help=f"seconds a page may take ({BUDGET})")
        parser.add_argument(
            "--seed", action="store_true", help="fill an empty database first (seed_demo_conversations)"
        )
        parser.add_argument("--conversations", type=int, default=100_000, help="with --seed (100000)")
        parser.add_argument("--messages", type=int, default=1_000_000, help="with --seed (1000000)")
        parser.add_argument("--rated", type=float, default=0.1, help="with --seed: ratings per message (0.1)")
        parser.add_argument("--export", action="store_true", help="also time the streamed exports under Daphne")
        parser.add_argument("--output", default="", help="also write the results as JSON to this file")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["database_url"]:
            self._in_subprocess(options)
            return
        if options["repeat"] < 1:
            raise CommandError("--repeat must be at least 1")
        if options["seed"]:
            self._seed(options["conversations"], options["messages"], options["rated"])
        database = settings.DATABASES["default"]
        where = f"{connection.vendor} {database.get('HOST') or ''} {database['NAME']}".replace("  ", " ")
        self.stdout.write(
            f"{where}: {Conversation.objects.count()} conversations, "
            f"{Message.objects.count()} messages, {Turn.objects.count()} turns"
        )
        results = self._measure(options["repeat"])
        self._report(results, options["budget"])
        exports_ok = True
        if options["export"]:
            from chat.management.commands import _bench_exports

            measured = [_bench_exports.measure(fmt) for fmt in ("csv", "json")]
            exports_ok = _bench_exports.report(measured, self.stdout.write)
            results += measured
        if options["output"]:
            Path(options["output"]).write_text(json.dumps({"database": where, "results": results}, indent=2))
        if not exports_ok or any(
            r["name"].startswith("insights") and r["median_s"] > options["budget"] for r in results
        ):
            sys.exit(1)

    def _in_subprocess(self, options: dict[str, Any]) -> None:
        argv = [sys.executable, str(Path(settings.BASE_DIR) / "manage.py"), "bench_insights"]
        argv += ["--repeat", str(options["repeat"]), "--budget", str(options["budget"])]
        if options["seed"]:
            argv += ["--seed", "--conversations", str(options["conversations"]), "--messages", str(options["messages"])]
            argv += ["--rated", str(options["rated"])]
        if options["export"]:
            argv.append("--export")
        if options["output"]:
            argv += ["--output", options["output"]]
        if options["seed"]:
            env = {**os.environ, "DATABASE_URL": options["database_url"]}
            subprocess.run([argv[0], argv[1], "migrate", "-v0"], env=env, check=True)
        result = subprocess.run(argv, env={**os.environ, "DATABASE_URL": options["database_url"]})
        if result.returncode:
            sys.exit(result.returncode)

    def _seed(self, conversations: int, messages: int, rated: float) -> None:
        if Conversation.objects.exists():
            raise CommandError("--seed fills an empty database only; this one has conversations")
        call_command("migrate", verbosity=0)
        call_command(
            "seed_demo_conversations",
            conversations=conversations,
            messages=messages,
            seed=17,
            rated=rated,
            stdout=self.stdout,
        )

    def _measure(self, repeat: int) -> list[dict[str, Any]]:
        user, _ = User.objects.get_or_create(username=BENCH_USER, defaults={"is_staff": True, "is_superuser": True})
        hosts = [h for h in settings.ALLOWED_HOSTS if h and h[0] not in "*.["]
        host = "testserver" if "testserver" in hosts or "*" in settings.ALLOWED_HOSTS else (hosts or ["localhost"])[0]
        client = Client(HTTP_HOST=host, HTTP_ACCEPT_LANGUAGE="uk")
        client.force_login(user)
        results = []
        try:
            for name, url, query in scenarios():
                client.get(url, query)  # warm-up: caches, prepared statements, the OS's file cache
                walls, sql = [], []
                for _ in range(repeat):
                    with CaptureQueriesContext(connection) as queries:
                        began = time.perf_counter()
                        response = client.get(url, query)
                        walls.append(time.perf_counter() - began)
                    if response.status_code != 200:
                        raise CommandError(f"{name}: HTTP {response.status_code}")
                    sql.append(sum(float(q["time"]) for q in queries.captured_queries))
                results.append(
                    {
                        "name": name,
                        "min_s": round(min(walls), 4),
                        "median_s": round(statistics.median(walls), 4),
                        "queries": len(queries.captured_queries),
                        "sql_median_s": round(statistics.median(sql), 4),
                    }
                )
        finally:
            user.delete()  # its session goes with it
        return results

    def _report(self, results: list[dict[str, Any]], budget: float) -> None:
        self.stdout.write(f"{'page':40} {'fastest':>9} {'median':>9} {'SQL':>9} {'queries':>8}")
        for r in results:
            verdict = "" if not r["name"].startswith("insights") else ("ok" if r["median_s"] <= budget else "SLOW")
            self.stdout.write(
                f"{r['name']:40} {r['min_s'] * 1000:7.0f}ms {r['median_s'] * 1000:7.0f}ms "
                f"{r['sql_median_s'] * 1000:7.0f}ms {r['queries']:8d}  {verdict}"
            )
