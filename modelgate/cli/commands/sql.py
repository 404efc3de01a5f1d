"""``modelgate sql "SELECT ..."``: run DuckDB SQL with ai_complete / ai_embed over the gateway.

The command is a client of a running gateway (URL and API key from options or the
environment), not of the database: every model call goes through ``/v1`` with the key, so the
key owner's permissions, limits and quotas apply. Results go to a table on stdout or to a
CSV/JSON/Parquet file; progress and the failure summary go to stderr.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from modelgate.cli.context import console, err_console, fail, print_json

__all__ = ["sql"]

FORMATS = ("table", "csv", "json", "jsonl", "parquet")
_COPY = {"csv": "FORMAT csv, HEADER true", "json": "FORMAT json, ARRAY true", "jsonl": "FORMAT json",
         "parquet": "FORMAT parquet"}  # fmt: skip
_UDF_PREFIX = "Python exception occurred while executing the UDF: "


def sql(
    query: Annotated[
        str,
        typer.Argument(help="SQL to run ('-' reads stdin). With several statements, the last one's result is shown."),
    ],  # fmt: skip
    base_url: Annotated[
        str | None,
        typer.Option("--base-url", envvar="MODELGATE_BASE_URL", help="The gateway, e.g. http://127.0.0.1:8080."),
    ] = None,  # fmt: skip
    api_key: Annotated[
        str | None, typer.Option("--api-key", envvar="MODELGATE_API_KEY", help="A gateway API key (mg-...).")
    ] = None,  # fmt: skip
    token: Annotated[
        str | None,
        typer.Option("--token", envvar="MODELGATE_TOKEN", help="A personal access token: lets --estimate read quotas."),
    ] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write the result to this file.")] = None,
    fmt: Annotated[
        str | None,
        typer.Option(
            "--format",
            "-f",
            help="table | csv | json | jsonl | parquet (default: from --output's extension, else table).",
        ),
    ] = None,  # fmt: skip
    strict: Annotated[bool, typer.Option("--strict", help="Fail the query at the first failed row.")] = False,
    estimate: Annotated[
        bool, typer.Option("--estimate", help="Dry run: count calls and tokens; call no model.")
    ] = False,
    progress: Annotated[
        bool | None, typer.Option("--progress/--no-progress", help="Progress bar on stderr (default: when a terminal).")
    ] = None,
    concurrency: Annotated[int, typer.Option("--concurrency", min=1, help="Calls in flight at once.")] = 32,
    timeout: Annotated[float, typer.Option("--timeout", min=0.1, help="Seconds per call.")] = 120.0,
    database: Annotated[
        str, typer.Option("--database", help="DuckDB database file (default: in memory).")
    ] = ":memory:",
    max_rows: Annotated[int, typer.Option("--max-rows", min=0, help="Rows shown in a table.")] = 1000,
) -> None:
    """Run SQL with ai_complete(endpoint, prompt[, options]), ai_embed(endpoint, text), their _detailed
    variants and ai_count_tokens(prompt[, options]), every call governed by the gateway."""
    try:
        import duckdb

        from modelgate.sql import config_from
        from modelgate.sql.duckdb_udf import SqlSession
    except ImportError:
        fail("modelgate sql needs DuckDB: pip install 'modelgate[sql]'")
    text = sys.stdin.read() if query == "-" else query
    kind = _format(fmt, output)
    try:
        config = config_from(base_url, api_key, concurrency=concurrency, timeout=timeout)
    except ValueError as exc:
        fail(f"{exc} (or use --base-url / --api-key)")
    try:
        conn = duckdb.connect(database)
    except duckdb.Error as exc:
        fail(f"cannot open {database}: {exc}")
    session = SqlSession(config, strict=strict, dry_run=estimate)
    try:
        session.register(conn)
        show_progress = progress if progress is not None else sys.stderr.isatty()
        ok, result = True, None
        try:
            result = _run(conn, session, text, show_progress)
        except duckdb.Error as exc:
            ok = False
            err_console.print(f"[bold red]error:[/] {escape(_clean(str(exc)))}", highlight=False, soft_wrap=True)
        if ok and estimate:
            _estimate_report(session, config.base_url, config.api_key, token, kind)
        elif ok and result is not None:
            _emit(conn, result, kind, output, max_rows)
        if not estimate and session.summary.rows:
            _summary(session)
        if not ok:
            raise typer.Exit(1)
    finally:
        session.close()
        conn.close()


def _format(fmt: str | None, output: Path | None) -> str:
    if fmt is None:
        suffix = output.suffix.lstrip(".").lower() if output is not None else ""
        fmt = {"csv": "csv", "json": "json", "jsonl": "jsonl", "ndjson": "jsonl", "parquet": "parquet",
               "pq": "parquet"}.get(suffix, "table" if output is None else "")  # fmt: skip
        if not fmt:
            fail(f"cannot tell the format of {output}: use --format csv|json|jsonl|parquet")
    fmt = fmt.lower()
    if fmt not in FORMATS:
        fail(f"unknown format '{fmt}': use one of {', '.join(FORMATS)}")
    if fmt == "parquet" and output is None:
        fail("--format parquet needs --output FILE")
    if fmt == "table" and output is not None:
        fail("a table is for the terminal: use --format csv|json|jsonl|parquet with --output")
    return fmt


def _run(conn: Any, session: Any, text: str, show_progress: bool) -> Any:
    """Execute every statement; return the last one's result as an arrow table (None if it has none)."""
    from modelgate.sql.progress import QueryProgress

    statements = conn.extract_statements(text)
    if not statements:
        fail("no SQL statement given")
    conn.execute("SET enable_progress_bar = false")

    def execute() -> Any:
        for stmt in statements[:-1]:
            conn.execute(stmt)
        rel = conn.sql(statements[-1].query)
        return None if rel is None else rel.to_arrow_table()

    if not show_progress:
        return execute()
    with QueryProgress(session, err_console):
        return execute()


def _clean(message: str) -> str:
    """DuckDB's wrapping of a UDF exception, minus the noise: what failed and why."""
    if _UDF_PREFIX in message:
        message = message.split(_UDF_PREFIX, 1)[1]
        for prefix in ("AiFunctionError: ",):
            message = message.removeprefix(prefix)
    return message


def _emit(conn: Any, table: Any, kind: str, output: Path | None, max_rows: int) -> None:
    if kind == "table":
        _print_table(table, max_rows)
        return
    conn.register("__mg_result", table)
    try:
        if output is not None:
            _copy(conn, kind, output)
            err_console.print(f"Wrote {table.num_rows} rows to {escape(str(output))} ({kind}).", highlight=False)
            return
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"result.{kind}"
            _copy(conn, kind, path)
            with path.open("rb") as src:
                shutil.copyfileobj(src, sys.stdout.buffer)
            sys.stdout.flush()
    finally:
        conn.unregister("__mg_result")


def _copy(conn: Any, kind: str, path: Path) -> None:
    quoted = str(path).replace("'", "''")
    conn.execute(f"COPY (SELECT * FROM __mg_result) TO '{quoted}' ({_COPY[kind]})")


def _print_table(table: Any, max_rows: int) -> None:
    out = Table(show_lines=False)
    for name in table.column_names:
        out.add_column(escape(name), overflow="fold")
    for row in table.slice(0, max_rows).to_pylist():
        out.add_row(*["[dim]NULL[/]" if v is None else escape(str(v)) for v in row.values()])
    console.print(out)
    if table.num_rows > max_rows:
        err_console.print(f"… {table.num_rows - max_rows} more rows not shown (use --output FILE or --max-rows).")


def _summary(session: Any) -> None:
    lines = session.summary.lines()
    style = "yellow" if session.summary.failed_rows else "dim"
    for line in lines:
        err_console.print(f"[{style}]{escape(line)}[/]", highlight=False, soft_wrap=True)


def _estimate_report(session: Any, base_url: str, api_key: str, token: str | None, kind: str) -> None:
    from modelgate.sql.estimate import GATEWAY_DEFAULT_OUTPUT

    est = session.estimate
    est.check(base_url, api_key, token)
    rows = []
    for e in est.endpoints.values():
        rows.append({
            "endpoint": e.endpoint, "rows": e.rows, "calls": e.calls, "input_tokens": e.input_tokens,
            "output_tokens_max": e.output_tokens + e.open_outputs * (e.default_output or GATEWAY_DEFAULT_OUTPUT),
            "calls_without_max_tokens": e.open_outputs, "total_tokens": e.total_tokens(), "may_invoke": e.may_invoke,
            "quota_checked": e.quota_checked, "quota_remaining": e.quota_remaining, "covered": e.covered(),
            "note": e.note,
        })  # fmt: skip
    quota_note = (
        "Quota: the effective remaining quota (the smaller of the endpoint's and the tenant's) was read "
        "with the personal access token."
        if token
        else "Quota: not checked. An API key cannot read quotas; pass --token or MODELGATE_TOKEN (a personal "
        "access token) to compare the estimate with the remaining quota."
    )
    token_note = ("Input tokens are the gateway's admission estimate (UTF-8 bytes / 4 plus message overhead); "
                  "the upstream's tokenizer decides the bill. Output is the most the calls may spend "
                  "(max_tokens, else the endpoint's default reservation, "
                  f"{GATEWAY_DEFAULT_OUTPUT} unless set).")  # fmt: skip
    if kind == "json":
        print_json({"dry_run": True, "calls": sum(r["calls"] for r in rows),
                    "input_tokens": sum(r["input_tokens"] for r in rows), "endpoints": rows,
                    "notes": [token_note, quota_note]})  # fmt: skip
        return
    table = Table(title="Estimate (dry run: no model was called)")
    for column in ("endpoint", "rows", "calls", "input tokens (est.)", "output tokens (max)", "may invoke",
                   "quota remaining", "covered"):  # fmt: skip
        table.add_column(column, overflow="fold")
    for r in rows:
        remaining = "-" if not r["quota_checked"] else ("no quota" if r["quota_remaining"] is None
                                                         else str(r["quota_remaining"]))  # fmt: skip
        covered = {True: "[green]yes[/]", False: "[red]NO[/]", None: "unknown"}[r["covered"]]
        may = {True: "yes", False: "[red]no[/]", None: "?"}[r["may_invoke"]]
        table.add_row(escape(r["endpoint"]), str(r["rows"]), str(r["calls"]), f"~{r['input_tokens']}",
                      str(r["output_tokens_max"]), may, remaining, covered)  # fmt: skip
    console.print(table)
    total_calls = sum(r["calls"] for r in rows)
    console.print(
        f"{total_calls} calls, about {sum(r['input_tokens'] for r in rows)} input tokens.",
        highlight=False,
        soft_wrap=True,
    )
    for r in rows:
        if r["note"]:
            console.print(f"{escape(r['endpoint'])}: {escape(r['note'])}", highlight=False, soft_wrap=True)
        if r["may_invoke"] is False:
            console.print(f"[red]Your API key may not invoke endpoint '{escape(r['endpoint'])}'.[/]")
    console.print(escape(token_note), highlight=False, soft_wrap=True)
    console.print(escape(quota_note), highlight=False, soft_wrap=True)
