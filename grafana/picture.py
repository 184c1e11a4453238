"""Draw a Grafana dashboard's panels as a PNG, from the answers of a real Prometheus.

This is how the picture of the model dashboard in the README is made. Grafana itself cannot be
installed where this project is built (no package of it in the registries that machine
reaches), so the picture is drawn here, honestly: the dashboard file's own panels (their PromQL
queries, legends, units, value mappings, thresholds and style overrides, at their grid
positions, the chosen panels stacked row by row) over the series a real Prometheus returns for
those queries. It is not a Grafana screenshot: fonts and spacing are matplotlib's.

With ``--demo`` it first runs ``monitor demo`` (a synthetic model whose ``income`` drifts after
``--drift-after`` seconds) and a Prometheus (``prometheus`` on the PATH) scraping it every 5 s,
then draws the whole run:

    pip install matplotlib
    python grafana/picture.py --demo --out docs/images/dashboard.png

Without ``--demo`` it draws from a Prometheus you run (``--prometheus URL --start --end``).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD = ROOT / "grafana" / "dashboards" / "drift-monitor-model.json"
#: The panels drawn by default, by title, in the dashboard's order.
PANELS = [
    "Drift status",
    "Critical features",
    "Alerts firing",
    "Current window",
    "Reference version",
    "Last evaluation",
    "PSI by feature",
    "KS statistic by feature (numeric)",
    "p-values (KS numeric, chi-square categorical)",
    "Feature status",
    "Accuracy with 95% Wilson interval",
    "Precision, recall, F1 (macro)",
]
#: Grafana's dark theme colours, by the names dashboards use.
COLORS = {
    "green": "#73BF69",
    "yellow": "#FADE2A",
    "red": "#F2495C",
    "blue": "#5794F2",
    "orange": "#FF9830",
    "purple": "#B877D9",
}
PALETTE = ["#7EB26D", "#EAB839", "#6ED0E0", "#EF843C", "#E24D42", "#1F78C1", "#BA43A9"]
BACKGROUND, PANEL, TEXT, GRID = "#111217", "#181b1f", "#ccccdc", "#2c3235"


@dataclass
class Series:
    ref: str
    name: str
    points: list[tuple[float, float]]


def color(name: str | None) -> str:
    return COLORS.get(name or "", name or TEXT)


# -- queries -----------------------------------------------------------------------------------


def substitute(expr: str, variables: dict[str, str], names: list[str], step: float) -> str:
    """The query as Grafana sends it: known variables by value, the others as "all" (``.*``),
    Grafana's own intervals by the step."""
    for name in sorted(names, key=len, reverse=True):
        value = variables.get(name)
        for form in (f"${{{name}}}", f"[[{name}]]", f"${name}"):
            if value is None:
                expr = re.sub(r'(\w+)\s*=\s*"' + re.escape(form) + '"', r'\1=~".*"', expr)
                expr = expr.replace(form, ".*")
            else:
                expr = expr.replace(form, value)
    interval = f"{max(int(step * 4), 15)}s"
    for builtin in ("$__rate_interval", "${__rate_interval}", "$__interval", "${__interval}"):
        expr = expr.replace(builtin, interval)
    return expr


def query_range(prometheus: str, expr: str, start: float, end: float, step: float) -> list[Any]:
    query = urllib.parse.urlencode({"query": expr, "start": start, "end": end, "step": step})
    with urllib.request.urlopen(f"{prometheus}/api/v1/query_range?{query}", timeout=30) as r:
        answer = json.load(r)
    if answer["status"] != "success":
        raise RuntimeError(f"{expr}: {answer}")
    return list(answer["data"]["result"])


def legend(fmt: str, labels: dict[str, str]) -> str:
    text = re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m.group(1), ""), fmt or "")
    text = text.strip() or "{" + ", ".join(f'{k}="{v}"' for k, v in labels.items()) + "}"
    # matplotlib leaves labels starting with "_" out of legends (__prediction__, __label__)
    return "\u200b" + text if text.startswith("_") else text


def panel_series(panel: dict[str, Any], fetch: Any) -> list[Series]:
    found = []
    for target in panel.get("targets", []):
        if target.get("hide"):
            continue
        for result in fetch(target["expr"]):
            points = [(float(t), float(v)) for t, v in result["values"]]
            name = legend(target.get("legendFormat", ""), result["metric"])
            found.append(Series(target.get("refId", "A"), name, points))
    return found


# -- layout -------------------------------------------------------------------------------------


def chosen_panels(dashboard: dict[str, Any], titles: list[str]) -> list[dict[str, Any]]:
    """The panels with these titles, their rows stacked without the rows in between."""
    panels = [p for p in dashboard["panels"] if p.get("title") in titles and p["type"] != "row"]
    missing = set(titles) - {p["title"] for p in panels}
    if missing:
        raise SystemExit(f"no panel titled {sorted(missing)} in the dashboard")
    tops = sorted({p["gridPos"]["y"] for p in panels})
    placed, y = {}, 0
    for top in tops:
        placed[top] = y
        y += max(p["gridPos"]["h"] for p in panels if p["gridPos"]["y"] == top)
    for panel in panels:
        panel["_y"] = placed[panel["gridPos"]["y"]]
    return panels


# -- drawing ------------------------------------------------------------------------------------


def mapped(value: float, defaults: dict[str, Any]) -> tuple[str | None, str]:
    """Grafana's value mappings, else the thresholds' colour: (text or None, colour)."""
    for mapping in defaults.get("mappings", []):
        if mapping.get("type") == "value":
            option = mapping["options"].get(str(int(value)) if value == int(value) else "")
            if option:
                return option.get("text"), color(option.get("color"))
    steps = defaults.get("thresholds", {}).get("steps", [])
    chosen = steps[0]["color"] if steps else "green"
    for step in steps[1:]:
        if value >= step["value"]:
            chosen = step["color"]
    return None, color(chosen)


def formatted(value: float, defaults: dict[str, Any]) -> str:
    unit, decimals = defaults.get("unit"), defaults.get("decimals")
    if unit == "percentunit":
        return f"{value * 100:.{1 if decimals is None else decimals}f}%"
    text = f"{value:,.{decimals}f}" if decimals is not None else f"{value:,.4g}"
    return f"{text} s" if unit == "s" else text


def style(series: Series, overrides: list[dict[str, Any]]) -> dict[str, Any]:
    props: dict[str, Any] = {}
    for override in overrides:
        matcher = override["matcher"]
        hit = (
            (matcher["id"] == "byFrameRefID" and matcher["options"] == series.ref)
            or (matcher["id"] == "byName" and matcher["options"] == series.name)
            or (matcher["id"] == "byRegexp" and re.fullmatch(matcher["options"], series.name))
        )
        if hit:
            props.update({p["id"]: p["value"] for p in override["properties"]})
    return props


def draw_stat(ax: Any, panel: dict[str, Any], series: list[Series]) -> None:
    defaults = panel.get("fieldConfig", {}).get("defaults", {})
    values = [v for s in series[:1] for _, v in s.points]
    if not values:
        ax.text(0.5, 0.45, "No data", ha="center", va="center", color=TEXT, fontsize=14)
        return
    text, fill = mapped(values[-1], defaults)
    ax.set_facecolor(fill)
    ax.text(
        0.5,
        0.42,
        text or formatted(values[-1], defaults),
        ha="center",
        va="center",
        color="white",
        fontsize=22,
        fontweight="bold",
        transform=ax.transAxes,
    )


def draw_timeseries(ax: Any, panel: dict[str, Any], series: list[Series], start: float) -> None:
    config = panel.get("fieldConfig", {})
    defaults, overrides = config.get("defaults", {}), config.get("overrides", [])
    palette = iter(PALETTE * 10)
    lines: dict[str, Any] = {}
    for item in series:
        props = style(item, overrides)
        fixed = props.get("color", {}).get("fixedColor")
        line_color = color(fixed) if fixed else next(palette)
        xs = [(t - start) / 60 for t, _ in item.points]
        ys = [v for _, v in item.points]
        dash = props.get("custom.lineStyle", {}).get("fill")
        width = props.get("custom.lineWidth", defaults.get("custom", {}).get("lineWidth", 1))
        lines[item.name] = (xs, ys, line_color)
        if width:
            ax.plot(
                xs,
                ys,
                color=line_color,
                linewidth=width + 0.5,
                linestyle={"dash": "--", "dot": ":"}.get(dash, "-"),
                label=item.name,
            )
        below = props.get("custom.fillBelowTo")
        if below:
            ax.plot([], [], color=line_color, linewidth=6, alpha=0.3, label=f"{item.name}-{below}")
    for item in series:
        below = style(item, overrides).get("custom.fillBelowTo")
        if below in lines:
            xs, ys, line_color = lines[item.name]
            other = dict(zip(lines[below][0], lines[below][1], strict=False))
            pairs = [(x, y, other[x]) for x, y in zip(xs, ys, strict=True) if x in other]
            if pairs:
                ax.fill_between(
                    [p[0] for p in pairs],
                    [p[1] for p in pairs],
                    [p[2] for p in pairs],
                    color=line_color,
                    alpha=0.25,
                    linewidth=0,
                )
    if defaults.get("unit") == "percentunit":
        ax.yaxis.set_major_formatter(lambda v, _: f"{v * 100:.0f}%")
    low, high = ax.get_ylim()
    if defaults.get("custom", {}).get("axisSoftMin") == 0 and low > 0:
        ax.set_ylim(bottom=0)
    if "max" in defaults:
        ax.set_ylim(top=max(defaults["max"], min(high, defaults["max"])))
    ax.grid(color=GRID, linewidth=0.6)
    ax.tick_params(colors=TEXT, labelsize=7)
    ax.set_xlabel("minutes", color=TEXT, fontsize=7)
    if series:
        ax.legend(loc="upper left", fontsize=6.5, ncol=3, frameon=False, labelcolor=TEXT)


def draw_states(ax: Any, panel: dict[str, Any], series: list[Series], start: float) -> None:
    defaults = panel.get("fieldConfig", {}).get("defaults", {})
    names = [s.name for s in series]
    for row, item in enumerate(series):
        points = item.points
        for (t, value), nxt in zip(points, [*points[1:], None], strict=True):
            end = nxt[0] if nxt else t
            _, fill = mapped(value, defaults)
            ax.barh(
                row,
                (end - t) / 60 or 0.05,
                left=(t - start) / 60,
                height=0.85,
                color=fill,
                alpha=0.85,
                linewidth=0,
            )
    ax.set_yticks(range(len(names)), names, color=TEXT, fontsize=7)
    ax.invert_yaxis()
    ax.tick_params(colors=TEXT, labelsize=7)
    ax.set_xlabel("minutes", color=TEXT, fontsize=7)


def render(
    dashboard: dict[str, Any],
    titles: list[str],
    fetch: Any,
    start: float,
    out: Path,
    note: str,
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = chosen_panels(dashboard, titles)
    rows = max(p["_y"] + p["gridPos"]["h"] for p in panels)
    unit = 0.42  # inches per grid row
    fig = plt.figure(figsize=(16, rows * unit + 0.9), facecolor=BACKGROUND)
    fig.text(
        0.01,
        1 - 0.3 / (rows * unit + 0.9),
        dashboard.get("title", ""),
        color=TEXT,
        fontsize=13,
        fontweight="bold",
        va="center",
    )
    fig.text(
        0.99,
        1 - 0.3 / (rows * unit + 0.9),
        note,
        color="#8e8e8e",
        fontsize=8,
        ha="right",
        va="center",
    )
    top = 0.6 / (rows * unit + 0.9)
    for panel in panels:
        grid = panel["gridPos"]
        height = (1 - top - 0.01) * grid["h"] / rows
        bottom = 1 - top - (1 - top - 0.01) * (panel["_y"] + grid["h"]) / rows
        box = [grid["x"] / 24 + 0.004, bottom + 0.004, grid["w"] / 24 - 0.008, height - 0.008]
        frame = fig.add_axes(box, facecolor=PANEL)
        frame.set_xticks([])
        frame.set_yticks([])
        for spine in frame.spines.values():
            spine.set_color(GRID)
        frame.text(
            0.01, 0.97, panel["title"], color=TEXT, fontsize=9, va="top", transform=frame.transAxes
        )
        series = panel_series(panel, fetch)
        title_space = 0.32 / (box[3] * (rows * unit + 0.9))
        if panel["type"] == "stat":
            inner = fig.add_axes([box[0], box[1], box[2], box[3] * (1 - title_space)])
            inner.axis("off")
            inner.set_facecolor(PANEL)
            frame.patch.set_visible(True)
            draw_stat(inner, panel, series)
            frame.set_facecolor(inner.get_facecolor())
            continue
        left = 0.035
        if panel["type"] in ("status-history", "state-timeline"):
            left = max(left, 0.0048 * max((len(item.name) for item in series), default=0))
        inner_box = [box[0] + left, box[1] + 0.035, box[2] - left - 0.01]
        inner_box.append(box[3] * (1 - title_space) - 0.045)
        inner = fig.add_axes(inner_box, facecolor=PANEL)
        for spine in inner.spines.values():
            spine.set_visible(False)
        if panel["type"] in ("status-history", "state-timeline"):
            draw_states(inner, panel, series, start)
        else:
            draw_timeseries(inner, panel, series, start)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110, facecolor=BACKGROUND)
    print(f"wrote {out}")


# -- the demo run -------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(url: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"{url} did not answer within {seconds:g} s")


def run_demo(args: argparse.Namespace, directory: Path) -> tuple[str, float, float, Any, Any]:
    """Start the demo and a Prometheus scraping it; the Prometheus URL and the run's span."""
    monitor_port, prometheus_port = free_port(), free_port()
    (directory / "prometheus.yml").write_text(
        "global: {scrape_interval: 5s, evaluation_interval: 5s}\n"
        "scrape_configs:\n"
        "  - job_name: drift-monitor\n"
        f"    static_configs: [{{targets: ['127.0.0.1:{monitor_port}']}}]\n"
    )
    prometheus = subprocess.Popen(
        [
            args.prometheus_binary,
            f"--config.file={directory / 'prometheus.yml'}",
            f"--storage.tsdb.path={directory / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{prometheus_port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    demo = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "monitor",
            "demo",
            "--port",
            str(monitor_port),
            "--drift-after",
            str(args.drift_after),
            "--duration",
            str(args.duration),
            "--log-level",
            "warning",
        ],
        stdout=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{prometheus_port}"
    wait_for(f"{url}/-/ready", 60)
    wait_for(f"http://127.0.0.1:{monitor_port}/readyz", 120)
    start = time.time()
    print(f"demo on :{monitor_port}, Prometheus on :{prometheus_port}; {args.duration} s ...")
    demo.wait(timeout=args.duration + 120)
    end = time.time() - 3
    return url, start, end, prometheus, demo


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dashboard", type=Path, default=DASHBOARD)
    parser.add_argument("--panels", default=";".join(PANELS), help="titles, ';'-separated")
    parser.add_argument("--var", action="append", default=["model=demo"], help="NAME=VALUE")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images" / "dashboard.png")
    parser.add_argument("--demo", action="store_true", help="run monitor demo and a Prometheus")
    parser.add_argument("--duration", type=int, default=240, help="--demo: seconds of traffic")
    parser.add_argument("--drift-after", type=int, default=90, help="--demo: seconds before drift")
    parser.add_argument("--prometheus-binary", default=shutil.which("prometheus") or "prometheus")
    parser.add_argument("--prometheus", help="without --demo: the Prometheus to query")
    parser.add_argument("--start", type=float, help="without --demo: Unix time")
    parser.add_argument("--end", type=float, help="without --demo: Unix time")
    parser.add_argument("--step", type=float, default=5.0)
    args = parser.parse_args(argv)
    dashboard = json.loads(args.dashboard.read_text())
    names = [v["name"] for v in dashboard.get("templating", {}).get("list", [])]
    variables = dict(item.split("=", 1) for item in args.var)
    titles = [t.strip() for t in args.panels.split(";") if t.strip()]
    with tempfile.TemporaryDirectory(prefix="dashboard-picture-") as tmp:
        processes: list[Any] = []
        try:
            if args.demo:
                url, start, end, *processes = run_demo(args, Path(tmp))
                note = (
                    f"monitor demo, drift injected at minute {args.drift_after / 60:g}; "
                    "queries run on Prometheus, drawn by grafana/picture.py (not Grafana)"
                )
            else:
                if not (args.prometheus and args.start and args.end):
                    parser.error("give --demo, or --prometheus, --start and --end")
                url, start, end = args.prometheus, args.start, args.end
                note = "drawn by grafana/picture.py from Prometheus (not Grafana)"

            def fetch(expr: str) -> list[Any]:
                query = substitute(expr, variables, names, args.step)
                return query_range(url, query, start, end, args.step)

            stamp = datetime.fromtimestamp(start, UTC).strftime("%Y-%m-%d %H:%M UTC")
            render(dashboard, titles, fetch, start, args.out, f"{note}; {stamp}")
        finally:
            for process in processes:
                if process.poll() is None:
                    process.terminate()
                    process.wait(timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
