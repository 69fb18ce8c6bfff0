"""Pipeline files: every problem reported with file, line and column; nothing unsafe loads."""

from __future__ import annotations

from pathlib import Path

import pytest

from lockgate.specs import SpecError, load_file


def write(tmp_path: Path, text: str, name: str = "p.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def problems(tmp_path: Path, text: str, name: str = "p.yaml") -> list[str]:
    with pytest.raises(SpecError) as info:
        load_file(write(tmp_path, text, name), secret_names=lambda n: n == "TOKEN")
    return [str(p).split(":", 1)[1] for p in info.value.problems]


GOOD = """\
name: release
description: Ship it.
params:
  service: {type: string, required: true, pattern: "^[a-z]+$"}
  replicas: {type: integer, default: 2, minimum: 1}
  env: {type: string, enum: [staging, prod], default: staging}
steps:
  - name: build
    kind: shell
    argv: [echo, "${service}"]
    retry: {attempts: 3, backoff: 0.5}
    timeout: 60
  - name: pause
    kind: sleep
    seconds: 1
  - name: deploy
    kind: shell
    argv: [echo, "${steps.build.stdout}", "${secrets.TOKEN}"]
    on_error: ignore
    rollback:
      kind: shell
      argv: [echo, undo, "${run.id}"]
"""


def test_a_good_file_becomes_core_objects(tmp_path: Path) -> None:
    """Steps, options, rollback and the params type all come through."""
    pipeline = load_file(write(tmp_path, GOOD), secret_names=lambda n: n == "TOKEN")
    assert pipeline.key == "default/release"
    assert [s.name for s in pipeline.steps] == ["build", "pause", "deploy"]
    build, pause, deploy = pipeline.steps
    assert build.retry.attempts == 3 and build.timeout == 60
    assert deploy.on_error == "ignore" and deploy.rollback_fn is not None
    assert pause.output_type is None and build.output_type is not None
    schema = pipeline.params_schema() or {}
    assert schema["required"] == ["service"]
    assert set(schema["properties"]) == {"service", "replicas", "env"}


def test_the_same_file_gives_the_same_version_and_a_change_a_new_one(tmp_path: Path) -> None:
    """A pipeline file's version is a hash of its content."""
    a = load_file(write(tmp_path, GOOD, "a.yaml"), secret_names=lambda n: True)
    b = load_file(write(tmp_path, GOOD, "b.yaml"), secret_names=lambda n: True)
    c = load_file(write(tmp_path, GOOD.replace("seconds: 1", "seconds: 2"), "c.yaml"),
                  secret_names=lambda n: True)  # fmt: skip
    assert a.version == b.version != c.version


def test_json_files_load_too(tmp_path: Path) -> None:
    """JSON is accepted, with the same checks."""
    text = '{"name": "j", "steps": [{"name": "s", "kind": "sleep", "seconds": 0}]}'
    assert load_file(write(tmp_path, text, "p.json")).name == "j"


def test_every_problem_is_listed_with_its_line_and_column(tmp_path: Path) -> None:
    """Unknown kind, unknown field, missing field, bad and unknown placeholders, duplicates."""
    text = """\
name: p
params:
  env: {type: string}
steps:
  - name: one
    kind: shel
  - name: two
    kind: shell
    argv: ["${nope}", "${steps.three.x}", "${__import__('os')}"]
    colour: red
  - name: two
    kind: sleep
    seconds: 1
  - kind: shell
    argv: [x]
  - name: four
    kind: shell
"""
    assert problems(tmp_path, text) == [
        "6:11: steps.0.kind: unknown step kind 'shel' (known: api, approval, python, shell, sleep)",
        "10:13: steps.1.colour: unknown field",
        "9:11: steps.1.argv: ${nope}: no param is called 'nope' (params: env)",
        "9:11: steps.1.argv: ${steps.three.x}: no earlier step is called 'three'",
        "9:11: steps.1.argv: bad placeholder ${__import__('os')}: use ${param}, "
        "${steps.STEP.FIELD}, ${run.id}, ${run.requested_by}, ${run.pipeline}, "
        "${run.workspace} or ${secrets.NAME}; if it is meant for the shell or the program, "
        "escape it as $${...}: \"$${__import__('os')}\"",
        "11:11: steps.2.name: step name 'two' is used twice",
        "14:5: steps.3.name: missing field",
        "16:5: steps.4.argv: missing field",
    ]


def test_top_level_problems(tmp_path: Path) -> None:
    """Bad names, reserved param names, unknown top-level fields, no steps."""
    text = "name: bad name\nparams:\n  run: {type: string}\nowner: me\nsteps: []\n"
    assert problems(tmp_path, text) == [
        "1:7: name: String should match pattern '^[A-Za-z0-9][A-Za-z0-9_.-]{0,199}$'",
        "3:3: params: Value error, a param cannot be called 'run'",
        "5:8: steps: List should have at least 1 item after validation, not 0",
        "4:8: owner: unknown field",
    ]


def test_unknown_secrets_are_refused_at_load_time(tmp_path: Path) -> None:
    """``${secrets.X}`` must name a configured secret."""
    text = "name: p\nsteps:\n  - name: a\n    kind: shell\n    argv: [echo, '${secrets.NOPE}']\n"
    assert problems(tmp_path, text) == [
        "5:11: steps.0.argv: ${secrets.NOPE}: no secret is called 'NOPE' here: set "
        "LOCKGATE_SECRET_NOPE, or put a file named NOPE in LOCKGATE_SECRETS_DIR"
    ]


def test_python_functions_must_import_at_load_time(tmp_path: Path) -> None:
    """A ``python`` step naming a missing function is refused when the file loads."""
    text = (
        "name: p\nsteps:\n  - name: a\n    kind: python\n    function: os.path:no_such\n"
        "  - name: b\n    kind: python\n    function: no_such_module_xyz:f\n"
    )
    found = problems(tmp_path, text)
    assert found[0] == "3:5: steps.0: module 'os.path' has no callable 'no_such'"
    assert found[1].startswith("6:5: steps.1: cannot import module 'no_such_module_xyz'")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "a: !!python/object/apply:os.system ['id']\n",
            "tag tag:yaml.org,2002:python/object/apply",
        ),
        ("a: &x [1]\nb: *x\n", "anchors and aliases are not allowed"),
        ("name: [unclosed\n", "invalid YAML"),
        ("- just\n- a list\n", "a pipeline file must hold a mapping"),
        ("a: " + "[" * 30 + "]" * 30 + "\n", "nested deeper than 20 levels"),
    ],
)
def test_unsafe_or_malformed_documents_are_refused(tmp_path: Path, text: str, message: str) -> None:
    """Python tags, aliases (billion laughs), syntax errors and deep nesting are refused."""
    found = problems(tmp_path, text)
    assert len(found) == 1 and message in found[0]


def test_oversized_documents_are_refused_before_parsing(tmp_path: Path) -> None:
    """A file over the size limit is refused from its size alone."""
    path = write(tmp_path, "name: p\n# " + "x" * 300_000 + "\n")
    with pytest.raises(SpecError, match="at most 262144"):
        load_file(path)


def test_hook_problems_are_located(tmp_path: Path) -> None:
    """Hooks take api, python or shell steps; ``${hook.*}`` fields are checked."""
    text = """\
name: p
steps:
  - name: a
    kind: sleep
    seconds: 0
hooks:
  run_finished:
    - kind: approval
    - kind: shell
      argv: [echo, "${hook.colour}"]
  nowhere:
    - kind: shell
      argv: [x]
"""
    found = problems(tmp_path, text)
    assert "8:13: hooks.run_finished.0.kind: Input should be 'api', 'python' or 'shell'" in found
    assert (
        "10:13: hooks.run_finished.1.argv: ${hook.colour}: hook has point, step, error, status"
        in found
    )
    assert any(p.startswith("11:3: hooks.nowhere: Input should be 'run_started'") for p in found)


def test_an_unknown_placeholder_in_an_approval_step_is_refused_at_load(tmp_path: Path) -> None:
    """Approval steps are checked like every other kind: file, line and what is wrong."""
    path = tmp_path / "gate.yaml"
    path.write_text(
        "name: gate\n"
        "params:\n"
        "  reviewer: {type: string}\n"
        "steps:\n"
        "  - name: sign-off\n"
        "    kind: approval\n"
        '    approvers: {users: ["${reviewr}"]}\n'
    )
    with pytest.raises(SpecError) as info:
        load_file(path)
    [problem] = info.value.problems
    assert str(problem).startswith(f"{path}:7:")
    assert "reviewr" in str(problem)
