"""Medians, same-round ratios, and the text / markdown tables bench/run.py prints and writes."""

from __future__ import annotations

import statistics
from collections import defaultdict
from typing import Any

__all__ = ["markdown_report", "summarize", "text_report"]

# (key in a run, column title, format)
_COLUMNS = (
    ("records_per_s", "records/s", "{:,.0f}"),
    ("mib_per_s", "MiB/s", "{:.1f}"),
    ("cpu_us_per_record", "CPU µs/rec", "{:.2f}"),
    ("p50_ms", "p50 ms", "{:.1f}"),
    ("p99_ms", "p99 ms", "{:.1f}"),
    ("rss_mb", "peak RSS MB", "{:.0f}"),
    ("loop_lag_p99_ms", "loop lag p99 ms", "{:.1f}"),
)


def _median(values: list[float]) -> float | None:
    present = [value for value in values if value is not None]
    return statistics.median(present) if present else None


def summarize(runs: list[dict[str, Any]], clients: list[str]) -> dict[str, Any]:
    """Per configuration: each client's medians over its good rounds, and the median of the
    same-round records/s ratios of every pair of clients (row / column)."""
    by_config: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for run in runs:
        by_config[run["config"]].append(run)
    summary: dict[str, Any] = {}
    for config, config_runs in by_config.items():
        medians: dict[str, dict[str, Any]] = {}
        per_round: dict[str, dict[int, float]] = defaultdict(dict)
        for client in clients:
            mine = [run for run in config_runs if run["client"] == client]
            if not mine:
                continue
            good = [run for run in mine if run["status"] == "ok"]
            row: dict[str, Any] = {
                "rounds_ok": len(good),
                "rounds": len([run for run in mine if run["status"] != "skipped"]),
                "failed": [run["reason"] for run in mine if run["status"] == "failed"],
                "skipped": next((run["reason"] for run in mine if run["status"] == "skipped"), None),
            }
            for key, _, _ in _COLUMNS:
                row[key] = _median([run.get(key) for run in good])
            medians[client] = row
            for run in good:
                per_round[client][run["round"]] = run["records_per_s"]
        ratios: dict[str, dict[str, float]] = {}
        for a in per_round:
            for b in per_round:
                if a == b:
                    continue
                shared = sorted(set(per_round[a]) & set(per_round[b]))
                if shared:
                    ratios.setdefault(a, {})[b] = statistics.median(
                        per_round[a][r] / per_round[b][r] for r in shared
                    )
        summary[config] = {"clients": medians, "ratios": ratios}
    return summary


def _cell(value: Any, fmt: str) -> str:
    return "–" if value is None else fmt.format(value)


def _rows(summary_config: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    header = ["client", "ok/rounds", *(title for _, title, _ in _COLUMNS)]
    rows = []
    for client, row in summary_config["clients"].items():
        if row["skipped"] and not row["rounds"]:
            rows.append([client, "skipped"] + ["–"] * len(_COLUMNS))
            continue
        status = f"{row['rounds_ok']}/{row['rounds']}"
        if row["failed"]:
            status += " FAILED"
        rows.append([client, status, *(_cell(row[key], fmt) for key, _, fmt in _COLUMNS)])
    return header, rows


def _ratio_rows(summary_config: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    ratios = summary_config["ratios"]
    names = [c for c, row in summary_config["clients"].items() if row["rounds_ok"]]
    header = ["row ÷ column", *names]
    rows = [
        [a, *("" if a == b else _cell(ratios.get(a, {}).get(b), "{:.2f}×") for b in names)]
        for a in names
    ]
    return header, rows


def _text_table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows)]
    lines = ["  ".join(str(cell).rjust(width) if i else str(cell).ljust(width)
                       for i, (cell, width) in enumerate(zip(line, widths)))
             for line in [header, *rows]]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def _markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def text_report(summary: dict[str, Any], descriptions: dict[str, str]) -> str:
    parts = []
    for config, data in summary.items():
        parts.append(f"== {config}: {descriptions.get(config, '')}")
        parts.append(_text_table(*_rows(data)))
        parts.append("\nsame-round records/s ratios (median over rounds):")
        parts.append(_text_table(*_ratio_rows(data)))
        parts.extend(f"  {line}" for line in _notes(data))
        parts.append("")
    return "\n".join(parts)


def _notes(summary_config: dict[str, Any]) -> list[str]:
    notes = []
    for client, row in summary_config["clients"].items():
        if row["skipped"]:
            notes.append(f"skipped {client}: {row['skipped']}")
        notes.extend(f"FAILED {client}: {reason}" for reason in row["failed"])
    return notes


def markdown_report(summary: dict[str, Any], descriptions: dict[str, str], meta: dict[str, Any]) -> str:
    parts = [
        f"Run {meta['date']} on {meta['machine']}; {meta['broker']}; {meta['records']:,} measured records "
        f"after {meta['warmup']:,} warm-up, {meta['rounds']} round(s), replication factor "
        f"{meta['replication_factor']}; brokers warmed with {meta.get('broker_warmup', 0):,} records first"
        f"; load average {meta['load_before']} before, {meta['load_after']} after.",
        "",
        "Versions: " + ", ".join(f"{client} {version}" for client, version in meta.get("versions", {}).items()) + ".",
        "",
    ]
    for config, data in summary.items():
        parts.append(f"#### `{config}`: {descriptions.get(config, '')}")
        parts.append("")
        parts.append(_markdown_table(*_rows(data)))
        parts.append("")
        parts.append("Same-round records/s ratios, row ÷ column (median over rounds):")
        parts.append("")
        parts.append(_markdown_table(*_ratio_rows(data)))
        parts.append("")
        parts.extend(f"- {line}" for line in _notes(data))
        parts.append("")
    return "\n".join(parts)
