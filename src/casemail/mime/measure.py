"""Measure reading on the shared corpus: crashes, time, files kept and
refused, reply-text matches.

    python -m casemail.mime.measure [--corpus DIR] [--compare] [--json]

The corpus is real mail from other projects' test suites (``files.tsv``
lists it); by default ``../shared/corpus`` beside the repository, or
``$CASEMAIL_CORPUS``. We only measure on it; none of it is copied here.

A reply text "matches" when it equals the expected text after trailing
spaces on each line and blank lines at both ends are ignored.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from casemail.mime.quotes import split_reply
from casemail.mime.reader import read_mail

TALON_DEFAULT = "Hello"


def default_corpus() -> Path:
    env = os.environ.get("CASEMAIL_CORPUS")
    if env:
        return Path(env)
    repo = Path(__file__).resolve().parents[3]
    return repo.parent / "shared" / "corpus"


def normalise(text: str) -> str:
    return "\n".join(line.rstrip() for line in text.splitlines()).strip("\n")


def raw_files(corpus: Path) -> list[Path]:
    rows = (corpus / "files.tsv").read_text().splitlines()[1:]
    cells = [row.split("\t") for row in rows]
    return [corpus / c[4] for c in cells if len(c) > 5 and c[5] == "raw"]


def measure_raw(corpus: Path) -> dict:
    """Read every raw mail; count crashes, lost bytes and time."""
    crashes: list[str] = []
    times: list[tuple[float, str]] = []
    defects: Counter[str] = Counter()
    files: Counter[str] = Counter()
    reasons: Counter[str] = Counter()  # refusals, by their first words
    for path in raw_files(corpus):
        raw = path.read_bytes()
        started = time.perf_counter()
        try:
            mail = read_mail(raw)
        except Exception as exc:  # what we measure: must never happen
            crashes.append(f"{path.relative_to(corpus)}: {exc!r}")
            continue
        times.append((time.perf_counter() - started,
                      str(path.relative_to(corpus))))
        if mail.raw != raw or any("could not be read" in d
                                  for d in mail.defects):
            crashes.append(f"{path.relative_to(corpus)}: fell back")
        defects.update(mail.defects)
        for item in mail.attachments:
            files["kept" if item.kept else "refused"] += 1
            if not item.kept:
                reasons[item.reason.split(";")[0]] += 1
    times.sort()
    return {
        "mails": len(times) + len(crashes) - sum(
            "fell back" in c for c in crashes),
        "crashes": crashes,
        "median_ms": round(times[len(times) // 2][0] * 1000, 2)
        if times else 0,
        "slowest": [(round(t * 1000), n) for t, n in times[-3:]],
        "top_defects": defects.most_common(8),
        "attachments": {"kept": files["kept"], "refused": files["refused"],
                        "reasons": reasons.most_common()},
    }


def discourse_cases(corpus: Path) -> list[tuple[str, str, str]]:
    base = corpus / "discourse-email_reply_trimmer"
    return [(p.name, p.read_text(encoding="utf-8", errors="replace"),
             (base / "expected" / "trimmed" / p.name).read_text(
                 encoding="utf-8", errors="replace"))
            for p in sorted((base / "bodies").iterdir())
            if (base / "expected" / "trimmed" / p.name).exists()]


def talon_cases(corpus: Path) -> list[tuple[str, bytes, str]]:
    base = corpus / "talon"
    out = []
    for path in sorted((base / "standard_replies").glob("*.eml")):
        expected = base / "expected" / f"{path.stem}_reply_text"
        want = expected.read_text() if expected.exists() else TALON_DEFAULT
        out.append((path.name, path.read_bytes(), want))
    return out


def rate(cases: list[tuple[str, str]]) -> dict:
    """``cases`` holds (name, "" if matched else what we got)."""
    misses = [name for name, miss in cases if miss]
    return {"matched": len(cases) - len(misses), "total": len(cases),
            "misses": misses}


def measure_discourse(corpus: Path,
                      trim: Callable[[str], str] | None = None) -> dict:
    trim = trim or (lambda body: split_reply(body)[0])
    results = []
    for name, body, want in discourse_cases(corpus):
        try:
            got = trim(body)
        except Exception as exc:
            got = f"error: {exc!r}"
        results.append((name, "" if normalise(got) == normalise(want)
                        else got or "(empty)"))
    return rate(results)


def measure_talon(corpus: Path) -> dict:
    results = []
    for name, raw, want in talon_cases(corpus):
        got = read_mail(raw).new_text
        results.append((name, "" if normalise(got) == normalise(want)
                        else got or "(empty)"))
    return rate(results)


def libraries() -> dict[str, Callable[[str], str]]:
    """Reply-parsing libraries to compare against, those installed."""
    found: dict[str, Callable[[str], str]] = {}
    try:
        from email_reply_parser import EmailReplyParser
        found["email-reply-parser"] = EmailReplyParser.parse_reply
    except ImportError:
        pass
    try:
        from mailparser_reply import EmailReplyParser as Mpr
        parser = Mpr(languages=["en", "de", "fr", "es", "it", "nl", "pl",
                                "sv", "ru"])
        found["mail-parser-reply"] = lambda body: parser.parse_reply(
            text=body)
    except ImportError:
        pass
    return found


def report(corpus: Path, compare: bool) -> dict:
    result = {"corpus": str(corpus), "raw": measure_raw(corpus),
              "discourse_trimmed": measure_discourse(corpus),
              "talon_standard_replies": measure_talon(corpus)}
    if compare:
        result["libraries"] = {
            name: measure_discourse(corpus, trim)
            for name, trim in libraries().items()}
    return result


def show(result: dict) -> str:
    raw = result["raw"]
    lines = [f"corpus: {result['corpus']}",
             f"raw mails read: {raw['mails']}, crashes: "
             f"{len(raw['crashes'])}, median {raw['median_ms']} ms",
             f"slowest: {raw['slowest']}",
             f"attachments: {raw['attachments']['kept']} kept, "
             f"{raw['attachments']['refused']} refused"]
    lines += [f"  crash: {c}" for c in raw["crashes"]]
    for key in ("discourse_trimmed", "talon_standard_replies"):
        r = result[key]
        lines.append(f"{key}: {r['matched']}/{r['total']} exact "
                     f"({100 * r['matched'] / max(r['total'], 1):.0f}%)"
                     f"  misses: {', '.join(r['misses']) or 'none'}")
    for name, r in result.get("libraries", {}).items():
        lines.append(f"  for comparison, {name} on discourse_trimmed: "
                     f"{r['matched']}/{r['total']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m casemail.mime.measure")
    parser.add_argument("--corpus", type=Path, default=default_corpus())
    parser.add_argument("--compare", action="store_true",
                        help="also measure installed reply-parser libraries")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if not (args.corpus / "files.tsv").exists():
        print(f"no corpus at {args.corpus}", file=sys.stderr)
        return 2
    result = report(args.corpus, args.compare)
    print(json.dumps(result, indent=1) if args.json else show(result))
    return 1 if result["raw"]["crashes"] else 0


if __name__ == "__main__":
    sys.exit(main())
