"""List every skipped test of a pytest run with its reason; fail on a skip that is not expected.

Usage: python .ci/check_skips.py JUNIT_XML ALLOWLIST
The allowlist (.ci/expected_skips.txt) has one line per expected skip:
``<test file or file::name glob> | <text in the skip reason> | why CI cannot run it``.
Exit status 1 when a test skipped that the allowlist does not name (a test CI is meant to run),
0 otherwise. Allowlist lines that matched no skip are reported too (they may be stale).
"""

from __future__ import annotations

import fnmatch
import sys
import xml.etree.ElementTree as ET


def skipped_tests(xml_path: str) -> list[tuple[str, str]]:
    """(node id, reason) of each skipped test case."""
    out = []
    for case in ET.parse(xml_path).getroot().iter("testcase"):
        skip = case.find("skipped")
        if skip is None or skip.get("type") == "pytest.xfail":
            continue
        module = case.get("classname", "")
        # classname is dotted: tests.test_x, tests.sub.test_x or tests.test_x.TestClass
        parts = module.split(".")
        end = next((i + 1 for i, p in enumerate(parts) if p.startswith("test_") or p.endswith("_test")), len(parts))
        node = "::".join(["/".join(parts[:end]) + ".py", *parts[end:], case.get("name", "")])
        out.append((node, (skip.get("message") or "").strip()))
    return out


def read_allowlist(path: str) -> list[tuple[str, str, str]]:
    entries = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            fields = [s.strip() for s in line.split("|")]
            if len(fields) != 3 or not all(fields):
                sys.exit(f"{path}:{lineno}: expected '<test glob> | <reason text> | why', got {line!r}")
            entries.append(tuple(fields))
    return entries


def main(xml_path: str, allow_path: str) -> int:
    skips, allowed = skipped_tests(xml_path), read_allowlist(allow_path)
    used, unexpected = set(), []
    print(f"\n==== skipped tests: {len(skips)} ====")
    for node, reason in skips:
        match = next(
            (i for i, (glob, text, _) in enumerate(allowed) if fnmatch.fnmatch(node, glob) and text in reason), None
        )
        if match is None:
            unexpected.append(node)
        else:
            used.add(match)
        tag = "expected: " + allowed[match][2] if match is not None else "NOT EXPECTED"
        print(f"  {node}\n      reason: {reason}\n      {tag}")
    for i, (glob, text, _) in enumerate(allowed):
        if i not in used:
            print(f"  note: expected skip '{glob} | {text}' did not happen (stale entry?)")
    if unexpected:
        print(
            f"\nFAIL: {len(unexpected)} test(s) skipped that CI is meant to run (fix the cause, or add them "
            f"to {allow_path} with the reason CI's machine cannot run them, and say so in the README):"
        )
        for node in unexpected:
            print(f"  {node}")
        return 1
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1], sys.argv[2]))
