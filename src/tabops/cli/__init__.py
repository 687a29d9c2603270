"""Command line: Typer commands that parse options, call one service, print the outcome."""
