"""Load app.yaml and explain every problem with file, line, key path and what is allowed."""
from __future__ import annotations

import os
import types
import typing
from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import BaseModel, ValidationError

from bot.config.approvals import approval_problems
from bot.config.models import AppConfig
from bot.config.types import At, env_references, register_env_value
from bot.redaction_rules import is_secret_name


@dataclass(frozen=True)
class ConfigProblem:
    file: str
    line: int | None
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class ConfigError(Exception):
    def __init__(self, problems: list[ConfigProblem]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


def load_config(path: str | Path) -> AppConfig:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([ConfigProblem(str(path), None, "", "file not found")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([ConfigProblem(str(path), None, "", f"cannot read the file ({exc.__class__.__name__})")]) from None
    return parse_config(text, str(path))


@dataclass(frozen=True)
class ConfigReport:
    """What `opsbot config check` says of a file: the config (None when it has problems), every
    problem, and warnings that do not stop the bot (a ${VAR} not set here)."""

    config: AppConfig | None
    problems: list[ConfigProblem]
    warnings: list[ConfigProblem]


def check_config_file(path: str | Path, extra_checks=()) -> ConfigReport:
    """Every problem in one pass: field errors, cross-references with the line of the reference,
    policies nobody can meet, and `extra_checks` (callables config -> list[At]) that need more
    than the models know, such as playbook steps parsed with the real command grammars."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return ConfigReport(None, [ConfigProblem(str(path), None, "", "file not found")], [])
    except (OSError, UnicodeDecodeError) as exc:
        return ConfigReport(None, [ConfigProblem(str(path), None, "", f"cannot read the file ({exc.__class__.__name__})")], [])
    lines: dict[tuple, int] = {}
    try:
        config = _validated(text, str(path), lines)
    except ConfigError as exc:  # the fields themselves: nothing to cross-check yet
        return ConfigReport(None, exc.problems, _unset_variables(lines, text, str(path)))
    checks = (AppConfig.reference_problems, approval_problems, *extra_checks)
    problems = [_located(found, lines, str(path)) for check in checks for found in check(config)]
    return ConfigReport(None if problems else config, problems, _unset_variables(lines, text, str(path)))


def _located(found: At, lines: dict[tuple, int], filename: str) -> ConfigProblem:
    return ConfigProblem(filename, _line_of(tuple(found.path), lines), _dotted(tuple(found.path)), found.message)


def _line_of(path: tuple, lines: dict[tuple, int]) -> int | None:
    for cut in range(len(path), -1, -1):
        if path[:cut] in lines:
            return lines[path[:cut]]
    return None


def _unset_variables(lines: dict[tuple, int], text: str, filename: str) -> list[ConfigProblem]:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        return []
    warnings: list[ConfigProblem] = []

    def walk(node: object, path: tuple) -> None:
        if isinstance(node, dict):
            for key, child in node.items():
                walk(child, path + (key,))
        elif isinstance(node, list):
            for i, child in enumerate(node):
                walk(child, path + (i,))
        elif isinstance(node, str) and "${" in node:
            for name, _ in env_references(node):
                if name not in os.environ:
                    warnings.append(ConfigProblem(filename, _line_of(path, lines), _dotted(path), f"${{{name}}} is not set in this environment"))

    walk(data, ())
    return warnings


def parse_config(text: str, filename: str = "app.yaml") -> AppConfig:
    """The config, or ConfigError with every problem: its fields, then every reference that points nowhere."""
    lines: dict[tuple, int] = {}
    config = _validated(text, filename, lines)
    problems = config.reference_problems()
    if problems:
        raise ConfigError([_located(found, lines, filename) for found in problems])
    return config


def _validated(text: str, filename: str, lines: dict[tuple, int]) -> AppConfig:
    """The models' own validation; `lines` is filled with the line of every key path."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = _to_python(node, (), lines, filename) if node is not None else {}
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else None
        raise ConfigError([ConfigProblem(filename, line, "", f"not valid YAML: {exc.problem}")]) from None
    except yaml.YAMLError as exc:
        raise ConfigError([ConfigProblem(filename, None, "", f"not valid YAML: {exc}")]) from None
    if not isinstance(data, dict):
        raise ConfigError([ConfigProblem(filename, 1, "", "the top level must be a mapping (services:, roles:, slack:)")])
    try:
        config = AppConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError([_explain(err, lines, filename) for err in exc.errors(include_input=False)]) from None
    _register_references(data)
    return config


def _register_references(data: object, key: object = None, parent: object = None) -> None:
    """Hand the redactor every value app.yaml refers to with ${VAR}, now rather than when a check first
    uses it: /logs or an error may echo it before then. A variable that is not set is left for the
    check that needs it to report. A header value, or a value under a key named like a secret, is a
    credential (masked even when short)."""
    if isinstance(data, dict):
        for child_key, child in data.items():
            _register_references(child, child_key, key)
    elif isinstance(data, list):
        for child in data:
            _register_references(child, key, parent)
    elif isinstance(data, str) and "${" in data:
        by_key = parent == "headers" or (isinstance(key, str) and is_secret_name(key))
        for name, credential in env_references(data):
            value = os.environ.get(name)
            if value:
                register_env_value(value, credential or by_key)


class _DuplicateKey(yaml.MarkedYAMLError):
    pass


def _to_python(node: yaml.Node, path: tuple, lines: dict[tuple, int], filename: str):
    """Build plain Python data from a YAML node tree, remembering the line of every key path."""
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        result = {}
        for key_node, value_node in node.value:
            key = _scalar(key_node)
            if key in result:
                raise _DuplicateKey(problem=f"duplicate key '{key}'", problem_mark=key_node.start_mark)
            result[key] = _to_python(value_node, path + (key,), lines, filename)
            lines[path + (key,)] = key_node.start_mark.line + 1
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_to_python(item, path + (i,), lines, filename) for i, item in enumerate(node.value)]
    return _scalar(node)


def _scalar(node: yaml.Node):
    if not isinstance(node, yaml.ScalarNode):
        raise _DuplicateKey(problem="a key must be a plain value", problem_mark=node.start_mark)
    return yaml.SafeLoader("").construct_object(node, deep=True)


def _explain(err: dict, lines: dict[tuple, int], filename: str) -> ConfigProblem:
    loc = tuple(err["loc"])
    is_key = bool(loc) and loc[-1] == "[key]"  # pydantic's marker for a bad mapping key
    data_path, model_path = _data_path(loc[:-1] if is_key else loc)
    line = _line_of(data_path, lines)
    message = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        allowed = _allowed_keys(model_path[:-1])
        if allowed:
            message = f"unknown key; allowed here: {', '.join(allowed)}"
    elif err["type"] == "missing":
        message = "required key is missing"
    elif err["type"] == "union_tag_invalid":
        message = f"unknown check kind; allowed: {err['ctx']['expected_tags']}"
    elif err["type"] == "union_tag_not_found":
        message = f"'kind' is required; allowed: {', '.join(_check_kinds())}"
    elif err["type"] == "string_pattern_mismatch":
        what = "the name" if is_key else "the value"
        message = f"{what} does not match the allowed form {err['ctx']['pattern']}"
    return ConfigProblem(filename, line, _dotted(data_path), message)


def _data_path(loc: tuple) -> tuple[tuple, tuple]:
    """pydantic puts the discriminator tag in error locations; the file has no such key."""
    data_path, model_path = [], []
    model: object = AppConfig
    for part in loc:
        kind = _union_member(model, part)
        if kind is not None:
            model = kind
            model_path.append(part)
            continue
        data_path.append(part)
        model_path.append(part)
        model = _child_type(model, part)
    return tuple(data_path), tuple(model_path)


def _unwrap(tp: object) -> object:
    while typing.get_origin(tp) is typing.Annotated:
        tp = typing.get_args(tp)[0]
    return tp


def _child_type(tp: object, part: object) -> object:
    tp = _unwrap(tp)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        field = tp.model_fields.get(part) if isinstance(part, str) else None
        return field.annotation if field else None
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is dict:
        return args[1]
    if origin is list:
        return args[0]
    if origin in (typing.Union, types.UnionType):
        for arg in args:
            if _unwrap(arg) is not type(None):
                return arg
    return None


def _union_member(tp: object, part: object) -> type | None:
    tp = _unwrap(tp)
    if typing.get_origin(tp) not in (typing.Union, types.UnionType):
        return None
    for member in typing.get_args(tp):
        if isinstance(member, type) and issubclass(member, BaseModel) and "kind" in member.model_fields:
            if part in typing.get_args(member.model_fields["kind"].annotation):
                return member
    return None


def _allowed_keys(model_path: tuple) -> list[str]:
    model: object = AppConfig
    for part in model_path:
        member = _union_member(model, part)
        model = member if member is not None else _child_type(model, part)
    model = _unwrap(model)
    if isinstance(model, type) and issubclass(model, BaseModel):
        return list(model.model_fields)
    return []


def _check_kinds() -> list[str]:
    from bot.config.models import Check

    union = typing.get_args(Check)[0]
    return [typing.get_args(m.model_fields["kind"].annotation)[0] for m in typing.get_args(union)]


def _dotted(path: tuple) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out
