"""Which modules ``import flask_dmmail`` and ``DMMail(app)`` load, against ``import flask``.

Run: ``python benchmarks/imports.py [--list] [--repeat 5]``.

Each case runs in a fresh interpreter (``python -c``) and records the modules that appear in
``sys.modules`` while it runs (the interpreter's own start-up modules are left out):

* ``import flask``: the baseline, measured in the same run;
* ``import flask_dmmail``;
* ``DMMail(app)``: ``init_app`` on an app configured for Notify with a made-up key, no
  Mailchimp key and no sandbox (a production app that only sends email);
* ``DMMail(app) sandbox``: the same app with ``DM_MAIL_SANDBOX = True`` (development).

For each case it prints how many modules were imported, how many of them come from
``mailchimp_marketing``, ``flask_dmmail.bulk``, ``flask_dmmail.cli`` and
``flask_dmmail.sandbox``, and the count and the median import time as a ratio of the
baseline's. Counts are exact; times depend on the machine and its load (the ratio less so).
``--list`` also prints the flask_dmmail and mailchimp_marketing modules each case imported.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from dataclasses import dataclass

#: The code each case runs, timed, between two snapshots of sys.modules.
CASES: dict[str, str] = {
    "import flask": "import flask",
    "import flask_dmmail": "import flask_dmmail",
    "DMMail(app)": (
        "import uuid\n"
        "from flask import Flask\n"
        "from flask_dmmail import DMMail\n"
        "app = Flask('imports')\n"
        "app.config.update(\n"
        "    SECRET_KEY='benchmark',\n"
        "    DM_NOTIFY_KEY=f'benchmark-{uuid.uuid4()}-{uuid.uuid4()}',\n"
        "    DM_NOTIFY_BASE_URL='http://127.0.0.1:9',\n"
        "    DM_MAIL_SANDBOX=False,\n"
        "    DM_ENVIRONMENT='production',\n"
        ")\n"
        "DMMail(app)\n"
    ),
    "DMMail(app) sandbox": (
        "from flask import Flask\n"
        "from flask_dmmail import DMMail\n"
        "app = Flask('imports')\n"
        "app.testing = True\n"
        "app.config.update(DM_MAIL_SANDBOX=True, DM_ENVIRONMENT='development')\n"
        "DMMail(app)\n"
        "app.extensions['dmmail'].sandbox.stop()\n"
    ),
}

#: Module name prefixes counted apart (a module counts if it is the prefix or below it).
GROUPS = (
    "mailchimp_marketing",
    "flask_dmmail.bulk",
    "flask_dmmail.cli",
    "flask_dmmail.sandbox",
)

_PROBE = """
import json, sys, time
before = set(sys.modules)
started = time.perf_counter()
exec(compile({code!r}, "<case>", "exec"), {{}})
elapsed = time.perf_counter() - started
print(json.dumps({{"modules": sorted(set(sys.modules) - before), "seconds": elapsed}}))
"""


@dataclass(frozen=True)
class Measured:
    """What one case imported (the same in every run) and its import times."""

    modules: tuple[str, ...]
    seconds: tuple[float, ...]

    def count(self, prefix: str | None = None) -> int:
        if prefix is None:
            return len(self.modules)
        return sum(m == prefix or m.startswith(prefix + ".") for m in self.modules)


def measure(code: str, repeat: int) -> Measured:
    """Run ``code`` in ``repeat`` fresh interpreters; its modules and its times."""
    modules: tuple[str, ...] = ()
    seconds: list[float] = []
    for _ in range(repeat):
        done = subprocess.run(
            [sys.executable, "-c", _PROBE.format(code=code)],
            capture_output=True,
            text=True,
            timeout=300,
        )
        if done.returncode:
            raise SystemExit(f"the case failed:\n{code}\n{done.stderr}")
        result = json.loads(done.stdout.strip().splitlines()[-1])
        modules = tuple(result["modules"])
        seconds.append(float(result["seconds"]))
    return Measured(modules, tuple(seconds))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="fresh interpreters per case")
    parser.add_argument("--list", action="store_true", help="list the modules of each case")
    args = parser.parse_args(argv)

    results = {name: measure(code, max(1, args.repeat)) for name, code in CASES.items()}
    baseline = results["import flask"]
    base_time = statistics.median(baseline.seconds)
    short = [g.split(".")[-1].split("_")[0] for g in GROUPS]
    header = f"{'case':<22}{'modules':>8}" + "".join(f"{s:>11}" for s in short)
    print(header + f"{'x modules':>11}{'ms':>8}{'x time':>8}")
    for name, measured in results.items():
        median = statistics.median(measured.seconds)
        print(
            f"{name:<22}{measured.count():>8}"
            + "".join(f"{measured.count(g):>11}" for g in GROUPS)
            + f"{measured.count() / baseline.count():>11.2f}"
            + f"{median * 1000:>8.0f}"
            + f"{median / base_time:>8.2f}"
        )
    if args.list:
        for name, measured in results.items():
            ours = [m for m in measured.modules if m.startswith(("flask_dmmail", *GROUPS))]
            print(f"\n{name}: {len(ours)} of flask_dmmail / mailchimp_marketing")
            for module in ours:
                print(f"  {module}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
