"""`python -m cli ...` is the `optiboard` command."""

from cli.main import app

app()
