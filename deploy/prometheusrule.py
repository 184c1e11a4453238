"""Write deploy/kubernetes/prometheusrule.yaml: the rules of deploy/prometheus/rules.yml as a
prometheus-operator ``PrometheusRule``.

    python deploy/prometheusrule.py           # after editing rules.yml
    python deploy/prometheusrule.py --check   # exit 1 if the manifest is out of date

rules.yml is copied as text (indented under ``spec:``), comments included, so the manifest
holds exactly the rules that promtool tests; tests/test_prometheus_kubernetes.py fails while the
two differ. Standard library only.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

DEPLOY = Path(__file__).resolve().parent
RULES = DEPLOY / "prometheus" / "rules.yml"
MANIFEST = DEPLOY / "kubernetes" / "prometheusrule.yaml"

HEADER = """\
# Generated from deploy/prometheus/rules.yml by `python deploy/prometheusrule.py`: edit
# rules.yml and run it again, never this file.
# prometheus-operator: drift-monitor's recording and alerting rules. A Prometheus picks up the
# PrometheusRules its ruleSelector and ruleNamespaceSelector match; kube-prometheus-stack
# selects them by the label `release: <helm release name>`: add it below.
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: drift-monitor
  labels:
    app.kubernetes.io/name: drift-monitor
    app.kubernetes.io/component: drift-monitor
    # release: kube-prometheus-stack
spec:
"""


def render(rules: str) -> str:
    """The manifest for the text of a rules file (whose top-level key is ``groups:``)."""
    body = "".join(f"  {line}" if line.strip() else line for line in rules.splitlines(True))
    return HEADER + body


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only check, write nothing")
    parser.add_argument("--rules", type=Path, default=RULES, help=f"default: {RULES}")
    parser.add_argument("--output", type=Path, default=MANIFEST, help=f"default: {MANIFEST}")
    args = parser.parse_args(argv)
    wanted = render(args.rules.read_text())
    if args.check:
        current = args.output.read_text() if args.output.exists() else None
        if current != wanted:
            print(
                f"{args.output} is out of date with {args.rules}: "
                "run python deploy/prometheusrule.py",
                file=sys.stderr,
            )
            return 1
        return 0
    args.output.write_text(wanted)
    return 0


if __name__ == "__main__":
    sys.exit(main())
