"""Judge prompts as Jinja templates: built-in ones ship in `templates/`, users may pass their own file.

Values (questions, responses, judgments) are passed as variables and never re-parsed as template
source, so a response containing "{{ ... }}" cannot change the prompt's structure.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2

from selflab.errors import ConfigError

TEMPLATE_DIR = Path(__file__).parent / "templates"


@lru_cache(maxsize=16)
def _environment(extra_dir: str | None) -> jinja2.Environment:
    dirs = [extra_dir, str(TEMPLATE_DIR)] if extra_dir else [str(TEMPLATE_DIR)]
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(dirs),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
        keep_trailing_newline=False,
    )


def builtin_templates() -> list[str]:
    """Names usable wherever a template is asked for (without the .jinja suffix)."""
    return sorted(p.stem for p in TEMPLATE_DIR.glob("*.jinja") if not p.name.startswith("_"))


def load_template(source: str | Path) -> jinja2.Template:
    """A built-in template by name ("rubric_additive") or a user template file by path. User files
    may `{% include "_context.jinja" %}` to get the fence note and the history/reference block
    (every built-in template includes it before the question, so the note precedes the data)."""
    path = Path(source)
    if path.suffix in {".jinja", ".txt", ".j2"} and path.is_file():
        return _environment(str(path.resolve().parent)).get_template(path.name)
    name = str(source).removesuffix(".jinja")
    if (TEMPLATE_DIR / f"{name}.jinja").is_file():
        return _environment(None).get_template(f"{name}.jinja")
    raise ConfigError(
        f"judge template {str(source)!r} is neither a built-in template nor an existing file",
        f"use one of {builtin_templates()} or the path of a .jinja/.txt file",
    )


def render(source: str | Path, **variables: Any) -> str:
    """Render a template; a variable the template needs but was not given is a clear error."""
    variables.setdefault("fence_note", "")  # templates may place the fence note (see fence.py)
    try:
        return load_template(source).render(**variables).strip()
    except jinja2.UndefinedError as exc:
        raise ConfigError(
            f"judge template {str(source)!r} uses a variable that was not provided: {exc.message}",
            "check the variable names in your template (prompt, response, reference, history, ...)",
        ) from exc
    except jinja2.TemplateSyntaxError as exc:
        raise ConfigError(
            f"judge template {str(source)!r} has a syntax error on line {exc.lineno}: {exc.message}",
            "fix the Jinja syntax in the template file",
        ) from exc


def render_with_note(source: str | Path, note: str, **variables: Any) -> str:
    """`render` with a fence note: templates place `fence_note` themselves; for a template that
    does not, the note goes first so user templates are fenced too."""
    text = render(source, fence_note=note, **variables)
    return text if not note or note in text else f"{note}\n\n{text}"
