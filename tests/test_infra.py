"""Checks of infra/ that run without a Bicep compiler: a real Bicep grammar and checkov.

No Bicep compiler can be installed on these machines. tree-sitter-bicep parses every .bicep
file and any error node fails the test (checkov exits 0 on files it cannot parse, so this
check comes first); checkov then scans with zero failed checks allowed, every skip listed
with its reason in .checkov.yaml.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import tree_sitter
import tree_sitter_bicep

from tests.conftest import ROOT

INFRA = ROOT / "infra"
CHECKOV = ROOT / ".venv-checkov" / "bin" / "checkov"
BICEP_FILES = sorted(INFRA.rglob("*.bicep"))


def parse_bicep(path: Path) -> tree_sitter.Tree:
    parser = tree_sitter.Parser(tree_sitter.Language(tree_sitter_bicep.language()))
    return parser.parse(path.read_bytes())


def syntax_errors(tree: tree_sitter.Tree) -> list[str]:
    """Every ERROR or MISSING node, as `line:column: text`."""
    problems: list[str] = []
    stack = [tree.root_node]
    while stack:
        node = stack.pop()
        if node.is_error or node.is_missing:
            line, column = node.start_point
            text = node.text.decode("utf-8", "replace")[:60] if node.text else node.type
            problems.append(
                f"{line + 1}:{column + 1}: {'missing' if node.is_missing else 'error'} {text!r}"
            )
        elif node.has_error:
            stack.extend(node.children)
    return sorted(problems)


def test_infra_has_bicep_files():
    assert (INFRA / "main.bicep") in BICEP_FILES
    assert len(BICEP_FILES) >= 2


@pytest.mark.parametrize("path", BICEP_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_bicep_file_parses_without_errors(path: Path):
    assert syntax_errors(parse_bicep(path)) == []


def test_the_syntax_check_catches_broken_bicep(tmp_path: Path):
    broken = tmp_path / "broken.bicep"
    broken.write_text("resource st 'Microsoft.Storage/storageAccounts@2023-05-01' = {\n  name: \n")
    assert syntax_errors(parse_bicep(broken))


def test_checkov_finds_no_failed_checks():
    assert CHECKOV.exists(), "run `make test`: it installs checkov into .venv-checkov"
    env = {**os.environ, "BC_SKIP_MAPPING": "TRUE"}  # no calls home for guideline mappings
    result = subprocess.run(
        [
            str(CHECKOV),
            "--directory",
            str(INFRA),
            "--framework",
            "bicep",
            "--output",
            "json",
            "--config-file",
            str(ROOT / ".checkov.yaml"),
            "--skip-download",
            "--quiet",
            "--compact",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=300,
    )
    report = json.loads(result.stdout)
    reports = report if isinstance(report, list) else [report]
    failed = [
        f"{check['check_id']} {check['check_name']} ({check['file_path']}: {check['resource']})"
        for item in reports
        for check in item.get("results", {}).get("failed_checks", [])
    ]
    assert failed == []
    summary = [item.get("summary", {}) for item in reports]
    assert all(s.get("parsing_errors", 0) == 0 for s in summary)
    assert sum(s.get("passed", 0) for s in summary) > 0  # it did scan our resources


def test_every_skipped_check_has_a_reason():
    lines = (ROOT / ".checkov.yaml").read_text().splitlines()
    skips = [line.strip() for line in lines if line.strip().startswith("- CKV")]
    assert skips, "list skipped checks in .checkov.yaml, each with a `# reason`"
    for skip in skips:
        check, _, reason = skip[2:].partition("#")
        assert check.strip().startswith("CKV") and len(reason.strip()) > 10, skip
