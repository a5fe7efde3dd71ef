"""The docs a newcomer reads stay true: field tables match the models, examples append, links resolve."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest

from cli.main import cli
from ledger.app import Ledger
from ledger.commands import (
    COMMAND_TYPES,
    Applied,
    Assigned,
    Collected,
    Funded,
    Overdue,
    Recalled,
    Refunded,
    Repaid,
    Reversed,
    Scored,
    Waived,
    WrittenOff,
)
from ledger.config import Settings
from ledger.ingest import append_lines

ROOT = Path(__file__).parent.parent
DOCS = ROOT / "docs"
MODELS = {
    "applied": Applied,
    "scored": Scored,
    "funded": Funded,
    "repaid": Repaid,
    "overdue": Overdue,
    "collected": Collected,
    "written_off": WrittenOff,
    "reversed": Reversed,
    "assigned": Assigned,
    "recalled": Recalled,
    "waived": Waived,
    "refunded": Refunded,
}
_ROW = re.compile(r"^\| `([a-z_]+)` \| (required|optional) \|")


def documented_fields(text: str) -> dict[str, dict[str, bool]]:
    """``{section: {field: required}}`` from contract.md's field tables (rows "| `name` | required |")."""
    tables: dict[str, dict[str, bool]] = {}
    section = None
    for line in text.splitlines():
        heading = re.match(r"^###\s+(.*)$", line)
        if heading:
            section = heading.group(1).strip().strip("`")
            continue
        row = _ROW.match(line)
        if row and section is not None:
            tables.setdefault(section, {})[row.group(1)] = row.group(2) == "required"
    return tables


def test_every_command_type_is_documented_with_exactly_its_fields():
    tables = documented_fields((DOCS / "contract.md").read_text(encoding="utf-8"))
    common = tables["Fields every command has"]
    assert set(MODELS) == set(COMMAND_TYPES)
    for kind, model in MODELS.items():
        documented = {**common, **tables.get(kind, {})}
        actual = {name: info.is_required() for name, info in model.model_fields.items()}
        assert documented == actual, (
            f"docs/contract.md's table for {kind} differs from ledger.commands.{model.__name__}"
        )


def test_the_field_table_parser_sees_a_field_that_is_missing_or_wrongly_marked():
    text = "### `funded`\n| field | required |\n| --- | --- |\n| `bank` | optional | id |\n"
    assert documented_fields(text) == {"funded": {"bank": False}}


def example_files() -> list[Path]:
    return [DOCS / "examples" / f"{kind}.jsonl" for kind in COMMAND_TYPES]


def test_there_is_one_example_file_per_command_type_holding_only_that_type():
    for kind, path in zip(COMMAND_TYPES, example_files(), strict=True):
        lines = path.read_text(encoding="utf-8").splitlines()
        assert lines and all(f'"type":"{kind}"' in line for line in lines), path


def test_the_examples_append_in_order_on_a_fresh_store(store_url):
    app = Ledger(Settings(db_url=store_url))
    try:
        for path in example_files():
            with path.open(encoding="utf-8") as f:
                outcomes = [(item.line, item.outcome.status, item.outcome.error) for item in append_lines(app, f)]
            assert outcomes and all(status == "appended" for _, status, _ in outcomes), (path.name, outcomes)
    finally:
        app.close()


def test_every_example_line_in_contract_md_is_one_of_the_example_files():
    examples = {line for path in example_files() for line in path.read_text(encoding="utf-8").splitlines()}
    blocks = re.findall(r"```json\n(.*?)```", (DOCS / "contract.md").read_text(encoding="utf-8"), re.S)
    command_lines = [line for block in blocks for line in block.splitlines() if line.startswith('{"type":')]
    assert len(command_lines) >= len(COMMAND_TYPES)
    assert set(command_lines) <= examples


def _markdown_files() -> list[Path]:
    # the repository's own pages: not what an install or a tool leaves in the tree (pytest's cache writes a
    # README.md, which made the suite's count depend on whether it had run before)
    skip = {".venv", ".git", "node_modules", ".pytest_cache", ".mypy_cache", ".ruff_cache", ".hypothesis"}
    return [p for p in ROOT.rglob("*.md") if not skip & set(p.relative_to(ROOT).parts)]


def _anchors(path: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    headings = re.findall(r"^#+\s+(.*)$", path.read_text(encoding="utf-8"), re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


def relative_links(path: Path) -> list[str]:
    text = re.sub(r"```.*?```", "", path.read_text(encoding="utf-8"), flags=re.S)
    targets = re.findall(r"\]\(([^)\s]+)\)", text)
    return [t for t in targets if not re.match(r"^[a-z][a-z0-9+.-]*:", t)]


@pytest.mark.parametrize("path", _markdown_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves_inside_the_repository(path):
    for target in relative_links(path):
        file_part, _, anchor = target.partition("#")
        resolved = (path.parent / file_part).resolve() if file_part else path
        assert resolved.is_relative_to(ROOT.resolve()), f"{path.name}: {target} leaves the repository"
        assert resolved.exists(), f"{path.name}: {target} does not exist"
        if anchor and resolved.suffix == ".md":
            assert anchor in _anchors(resolved), f"{path.name}: {target} names no heading"


def test_no_markdown_file_points_at_the_shared_folder():
    for path in _markdown_files():
        assert "../shared" not in path.read_text(encoding="utf-8"), path


def _commands(group: click.Group, prefix: str = "") -> dict[str, click.Command]:
    found: dict[str, click.Command] = {}
    ctx = click.Context(group)
    for name in group.list_commands(ctx):  # the root's commands are imported when asked for (cli/main.py)
        command = group.get_command(ctx, name)
        assert command is not None, name
        path = f"{prefix}{name}"
        if isinstance(command, click.Group):
            found.update(_commands(command, path + " "))
        else:
            found[path] = command
    return found


def test_every_cli_command_and_option_is_in_the_contracts_table():
    """A command or option added to the CLI without a word in docs/contract.md fails here."""
    text = (DOCS / "contract.md").read_text(encoding="utf-8")
    rows = [line for line in text.splitlines() if line.startswith("| `ledger ")]
    for path, command in _commands(cli).items():
        row = next((r for r in rows if re.match(rf"^\| `ledger {re.escape(path)}[ `]", r)), None)
        assert row is not None, f"ledger {path} is not in docs/contract.md's command table"
        for param in command.params:
            names = [n for n in param.opts if n.startswith("--") and n not in ("--db", "--json", "--help")]
            assert not names or any(n in row for n in names), f"ledger {path} {names[0]} is not documented"


def test_the_cost_cap_refusal_in_rules_md_is_what_append_prints(tmp_path):
    """Reproduction: rules.md's example lacked the " (applied DATE)" the CLI prints. EX1's application
    and approval with a 10.00 fee, as rules.md describes EX3."""
    import json

    from click.testing import CliRunner

    [documented] = [
        line.strip() for line in (DOCS / "rules.md").read_text(encoding="utf-8").splitlines() if "loan EX3:" in line
    ]
    first = lambda path: json.loads((DOCS / "examples" / path).read_text(encoding="utf-8").splitlines()[0])  # noqa: E731
    applied, scored = first("applied.jsonl"), first("scored.jsonl")
    applied.update(loan_id="EX3", idempotency_key="app-EX3")
    scored.update(loan_id="EX3", idempotency_key="score-EX3", fee="10.00")
    url = f"sqlite:///{tmp_path}/ledger.db"
    assert CliRunner().invoke(cli, ["init", "--db", url]).exit_code == 0
    lines = "".join(json.dumps(c) + "\n" for c in (applied, scored))
    result = CliRunner().invoke(cli, ["append", "-", "--db", url], input=lines)
    assert result.exit_code == 1
    assert f"line 2: rejected: {documented}" in result.output.splitlines()


def _commands_in(readme: str) -> list[str]:
    blocks = re.findall(r"```sh\n(.*?)```", readme, flags=re.S)
    return [line for block in blocks for line in block.splitlines() if line.startswith("python3 -m venv")]


def _pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, version = line.partition("==")
            pins[re.sub(r"[-_.]+", "-", name).lower()] = version
    return pins


def test_ci_runs_exactly_the_readmes_test_command():
    demo, tests = _commands_in((ROOT / "README.md").read_text(encoding="utf-8"))
    assert "ledger demo" in demo and "pytest" in tests
    assert tests in (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()


def test_the_demos_lock_pulls_no_test_tool_and_each_lock_pins_its_extra():
    """Reproduction: `pip install -r requirements.lock -e .` (the demo's install) pulled pytest, mypy, ruff,
    scikit-learn and scipy."""
    import tomllib

    runtime, test = _pins(ROOT / "requirements.lock"), _pins(ROOT / "requirements-test.lock")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]

    def names(requirements: list[str]) -> set[str]:
        return {re.sub(r"[-_.]+", "-", re.split(r"[\[<>=!~ ;]", r, maxsplit=1)[0]).lower() for r in requirements}

    assert names(project["dependencies"]) <= set(runtime) and {"psycopg-binary", "psycopg-pool"} <= set(runtime)
    assert names(project["optional-dependencies"]["test"]) <= set(test)
    tools = {"pytest", "pytest-xdist", "hypothesis", "mypy", "ruff", "scikit-learn", "scipy", "httpx"}
    assert tools <= set(test) and not tools & set(runtime)
    assert not set(runtime) & set(test)  # one pin per package


def test_the_spark_extra_is_pinned_in_its_own_lock_and_installed_by_the_test_command():
    """pyspark and pandas are an optional extra: not in the demo's install, exact in requirements-spark.lock,
    and installed by the README's test command, so the Spark engine's test runs (and nothing skips)."""
    import tomllib

    runtime, spark = _pins(ROOT / "requirements.lock"), _pins(ROOT / "requirements-spark.lock")
    extra = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["optional-dependencies"]
    pinned = dict(re.split(r"==", r, maxsplit=1) for r in extra["spark"])
    assert pinned == {name: spark[name] for name in pinned} and {"pyspark", "pandas", "py4j"} <= set(spark)
    assert not set(runtime) & set(spark) and not set(spark) & set(_pins(ROOT / "requirements-test.lock"))
    _, tests = _commands_in((ROOT / "README.md").read_text(encoding="utf-8"))
    assert "-r requirements-spark.lock" in tests and "spark]" in tests
