"""The watermark sections of an evaluation report, rebuilt from ``watermark`` and
``wm-attack`` rows alone."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from advparams.evaluation.config import EvalConfig
from advparams.evaluation.rows import ResultRow
from advparams.reports._table import fmt_num, fmt_pct, table


def _share(rs: Sequence[ResultRow], key: str) -> str:
    vals = [r.metrics.get(key) for r in rs]
    return fmt_num([100 * v for v in vals if v is not None], 1) if any(v is not None for v in vals) else "–"


def _verified(rs: Sequence[ResultRow]) -> str:
    return f"{sum(bool(r.metrics.get('verified')) for r in rs)}/{len(rs)}"


def _setting(name: str, setting: Mapping[str, Any]) -> str:
    text = ", ".join(f"{k}={v}" for k, v in setting.items())
    return f"{name} ({text})" if text else name


def watermark_sections(by_kind: Mapping[str, list[ResultRow]], config: EvalConfig) -> list[str]:
    """The Markdown lines of the watermark sections (none when the run has no watermarks)."""
    if not config.watermarks:
        return []
    names = [w.title for w in config.watermarks]
    clean = {r.seed: r.accuracy for r in by_kind.get("clean", [])}
    wms: dict[str, list[ResultRow]] = defaultdict(list)
    for r in by_kind.get("watermark", []):
        wms[str(r.scheme)].append(r)
    nulls = by_kind.get("null", [])
    out = ["## Watermarks", ""]
    out.append(
        f"Thresholds are calibrated per key set on {len(nulls)} null models (independently trained, seeds "
        f"{', '.join(str(r.seed) for r in sorted(nulls, key=lambda r: r.seed)) or '–'}; test accuracy "
        f"{fmt_pct([r.accuracy for r in nulls])}) for a false-positive rate of {config.fpr:g}: the smallest "
        "share of the key whose binomial tail at the null match rate is at most that, and above every null "
        "model's score. *verified* counts seeds whose model reached it; *null false positives* counts null "
        "models over all seeds that did."
    )
    out.append("")
    rows = []
    for w in names:
        rs = wms.get(w, [])
        if not rs:
            continue
        cost = [_cost(clean.get(r.seed), r.accuracy) for r in rs]
        thresholds = [r.metrics.get("threshold") for r in rs]
        rows.append(
            [
                w,
                fmt_pct([clean.get(r.seed) for r in rs]),
                fmt_pct([r.accuracy for r in rs]),
                fmt_num(cost),
                fmt_pct([r.metrics["watermark_accuracy"] for r in rs]),
                _verified(rs),
                fmt_num([100 * t for t in thresholds if t is not None], 1)
                if all(t is not None for t in thresholds)
                else "unreachable",
                fmt_num([100 * max(r.metrics["null_scores"]) for r in rs], 1),
                f"{sum(int(r.metrics.get('null_false_positives', 0)) for r in rs)}"
                f"/{sum(len(r.metrics['null_scores']) for r in rs)}",
                fmt_num([r.seconds for r in rs], 1),
            ]
        )
    out.append(
        table(
            [
                "watermark",
                "clean %",
                "watermarked %",
                "cost (pp)",
                "watermark acc %",
                "verified",
                "threshold %",
                "max null score %",
                "null false positives",
                "embed s",
            ],
            rows,
        )
    )
    out.append("")

    auth = [(w, wms[w]) for w in names if wms.get(w) and "authentication_success" in wms[w][0].metrics]
    if auth:
        out += [
            "### Fingerprint authentication",
            "",
            "Each registered user gets the key images with their 256-bit fingerprint in the LSB plane. "
            "*success*: share of (user, key image) pairs the model answers with the watermark class **and** "
            "whose fingerprint names that user; *users authenticated*: users with every image a success and "
            "the watermark verified; forged (random bits) and unregistered users' fingerprints must be "
            "rejected.",
            "",
        ]
        rows = [
            [
                w,
                _share(rs, "authentication_success"),
                f"{sum(r.metrics['users_authenticated'] for r in rs)}/{sum(r.metrics['users'] for r in rs)}",
                _share(rs, "forged_rejected"),
                _share(rs, "unknown_rejected"),
            ]
            for w, rs in auth
        ]
        out.append(
            table(["watermark", "success %", "users authenticated", "forged rejected %", "unknown rejected %"], rows)
        )
        out.append("")

    locked = [(w, wms[w]) for w in names if wms.get(w) and "then_lock" in wms[w][0].metrics]
    if locked:
        scheme = locked[0][1][0].metrics["then_lock"]["scheme"]
        out += [
            f"### Watermark, then lock ({scheme})",
            "",
            "The watermarked model locked, and unlocked with its key: the locked copy should not verify, the "
            "unlocked one must be bit-exact and verify as before.",
            "",
        ]
        rows = []
        for w, rs in locked:
            tl = [r.metrics["then_lock"] for r in rs]
            rows.append(
                [
                    w,
                    fmt_pct([t["locked_accuracy"] for t in tl]),
                    fmt_pct([t["locked_watermark_accuracy"] for t in tl]),
                    fmt_pct([t["unlocked_watermark_accuracy"] for t in tl]),
                    "yes" if all(t["unlocked_bit_exact"] for t in tl) else "**no**",
                ]
            )
        out.append(
            table(["watermark", "locked clean %", "locked watermark %", "unlocked watermark %", "bit-exact"], rows)
        )
        out.append("")

    attacks: dict[tuple[str, str, str], list[ResultRow]] = defaultdict(list)
    for r in by_kind.get("wm-attack", []):
        attacks[(str(r.attack), str(r.scheme), json.dumps(r.setting, sort_keys=True))].append(r)
    if attacks:
        out += [
            "## Attacks on the watermarks",
            "",
            "Each cell: watermark retention % (share of the key still answered with the watermark label) / "
            "clean test accuracy % of the attacked model / seeds still verified at the calibrated threshold.",
            "",
        ]
        rows = []
        for aspec in config.attacks:
            for setting in aspec.settings():
                k = json.dumps(setting, sort_keys=True)
                cells = []
                for w in names:
                    rs = attacks.get((aspec.name, w, k), [])
                    cells.append(
                        f"{fmt_pct([r.metrics['retention'] for r in rs])} / {fmt_pct([r.accuracy for r in rs])} / "
                        f"{_verified(rs)}"
                        if rs
                        else "–"
                    )
                rows.append([_setting(aspec.name, setting), *cells])
        out.append(table(["attack", *names], rows))
        out.append("")
        extra = [
            (aspec.name, setting)
            for aspec in config.attacks
            for setting in aspec.settings()
            if any(
                "key_queries_flagged" in r.metrics
                for w in names
                for r in attacks.get((aspec.name, w, json.dumps(setting, sort_keys=True)), [])
            )
        ]
        if extra:
            out += ["Query filters: share of key queries / clean test queries the filter altered (%).", ""]
            rows = []
            for name, setting in extra:
                k = json.dumps(setting, sort_keys=True)
                cells = []
                for w in names:
                    rs = attacks.get((name, w, k), [])
                    cells.append(
                        f"{_share(rs, 'key_queries_flagged')} / {_share(rs, 'test_queries_flagged')}" if rs else "–"
                    )
                rows.append([_setting(name, setting), *cells])
            out.append(table(["attack", *names], rows))
            out.append("")
        out += _evasion_lines(config, attacks, wms)
        gan = [r for r in by_kind.get("wm-attack", []) if r.attack == "gan-removal"]
        if gan:
            out += [
                "GAN removal, phase 1: the class it took for the watermark's (anomaly index; > 2 counts as detected).",
                "",
            ]
            rows = []
            for w in names:
                rs = sorted((r for r in gan if r.scheme == w), key=lambda r: r.seed)
                target = {r.seed: _target_of(wms.get(w, []), r.seed) for r in rs}
                rows.append(
                    [
                        w,
                        ", ".join(
                            f"seed {r.seed}: class {r.metrics['info']['detected_class']} "
                            f"(index {r.metrics['info']['anomaly_index']:.2f}; watermark class {target[r.seed]})"
                            for r in rs
                        )
                        or "–",
                    ]
                )
            out.append(table(["watermark", "detected"], rows))
            out.append("")
        if any(r.metrics.get("authentication_success") is not None for r in by_kind.get("wm-attack", [])):
            out += ["Fingerprint authentication success % after each attack (schemes with user fingerprints).", ""]
            auth_names = [w for w, _ in auth]
            rows = []
            for aspec in config.attacks:
                for setting in aspec.settings():
                    k = json.dumps(setting, sort_keys=True)
                    rows.append(
                        [_setting(aspec.name, setting)]
                        + [_share(attacks.get((aspec.name, w, k), []), "authentication_success") for w in auth_names]
                    )
            out.append(table(["attack", *auth_names], rows))
            out.append("")
    return out


def _evasion_lines(
    config: EvalConfig, attacks: Mapping[tuple[str, str, str], list[ResultRow]], wms: Mapping[str, list[ResultRow]]
) -> list[str]:
    """The detector-evasion table: per watermark and detector, the verification decisions
    and the clean accuracy the wrapper costs (its false rejections)."""
    specs = [a for a in config.attacks if a.name == "detector-evasion"]
    if not specs:
        return []
    out = ["### Detector evasion", ""]
    out.append(
        "The stolen watermarked model behind a backdoor detector fitted on the attacker's clean share of the "
        "data and calibrated to turn away the stated share of clean queries; flagged queries are answered with "
        "the second-ranked label. *verified*: seeds whose wrapped model still passes verification (the "
        "unwrapped watermarked model's count in the watermark table above); *key flagged*: the owner's key "
        "queries the detector caught; *cost*: clean test accuracy of the watermarked model minus the wrapper's, "
        "in points (its false rejections)."
    )
    out.append("")
    body = []
    for aspec in specs:
        for setting in aspec.settings():
            k = json.dumps(setting, sort_keys=True)
            for w in [x.title for x in config.watermarks]:
                rs = attacks.get((aspec.name, w, k), [])
                if not rs:
                    continue
                marked = {r.seed: r.accuracy for r in wms.get(w, [])}
                cost = [_cost(marked.get(r.seed), r.accuracy) for r in rs]
                body.append(
                    [
                        _setting(aspec.name, setting),
                        w,
                        _verified(rs),
                        fmt_pct([r.metrics["retention"] for r in rs]),
                        _share(rs, "key_queries_flagged"),
                        _share(rs, "test_queries_flagged"),
                        fmt_num([c for c in cost if c is not None]),
                    ]
                )
    header = ["attack", "watermark", "verified", "retention %", "key flagged %", "test flagged %", "cost (pp)"]
    out += [table(header, body) if body else "_No rows yet._", ""]
    return out


def _cost(before: float | None, after: float | None) -> float | None:
    """Clean accuracy lost to the watermark, in percentage points."""
    return None if before is None or after is None else 100 * (before - after)


def _target_of(rows: Sequence[ResultRow], seed: int) -> str:
    for r in rows:
        if r.seed == seed:
            info = r.metrics.get("info", {})
            if "watermark_class" in info:
                return str(info["watermark_class"])
            if "target" in info:
                return str(info["target"])
    return "–"
