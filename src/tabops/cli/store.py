"""``tabops store``: the S3-compatible storage a registry lives on (endpoint from AWS_*)."""

from __future__ import annotations

from typing import Annotated

import typer

from tabops.cli.output import console, reported_errors

app = typer.Typer(
    help="Manage the S3-compatible storage a registry lives on.", no_args_is_help=True
)


@app.command("create-bucket")
def create_bucket(
    name: Annotated[str, typer.Argument(help="Bucket name, or an s3://bucket URL.")],
) -> None:
    """Create a bucket on the endpoint AWS_ENDPOINT_URL names (AWS itself when unset).

    Credentials and region come the standard AWS way (AWS_ACCESS_KEY_ID and
    AWS_SECRET_ACCESS_KEY, or AWS_PROFILE; AWS_DEFAULT_REGION). A bucket that exists
    already and is yours is left as it is.
    """
    from tabops.registry.s3 import create_bucket as create

    bucket = name.removeprefix("s3://").split("/", 1)[0]
    with reported_errors():
        created = create(name)
    if created:
        console.print(f"[green]created bucket[/] {bucket}: use s3://{bucket} as a registry URL")
    else:
        console.print(f"bucket {bucket} exists already and is yours; nothing to do")
