"""`haorui-async send PHONENUMBER TEXT`: send one SMS; the exit code tells its outcome."""

from __future__ import annotations

import asyncio
from pathlib import Path

import click

from .._exceptions import HaoruiError
from .._protocol import SendResult
from .._sender import AsyncSender
from ._app import app
from ._common import (
    ENV_SENDER_ID,
    BadInput,
    credentials,
    credentials_option,
    describe_failure,
    exit_code_for,
    sender_id_option,
)


async def _send_one(
    creds: dict[str, str | None],
    method: str,
    phonenumber: str,
    text: str,
    fields: dict[str, str | None],
) -> SendResult:
    async with AsyncSender(
        api_id=creds["api_id"],
        api_password=creds["api_password"],
        base_url=creds["base_url"],
        method="GET" if method == "GET" else "POST",
    ) as sender:
        return await sender.send(phonenumber, text, **fields)


async def _send_command(
    creds: dict[str, str | None],
    method: str,
    phonenumber: str,
    text: str,
    fields: dict[str, str | None],
) -> int:
    """Send, print the outcome, return the exit code."""
    try:
        result = await _send_one(creds, method, phonenumber, text, fields)
    except HaoruiError as error:
        click.echo(describe_failure(error), err=True)
        return exit_code_for(error)
    click.echo(
        f"sent: message_id={result.message_id} uid={result.uid or result.message.uid} "
        f"attempts={result.attempts}"
    )
    return exit_code_for(None)


@app.command("send")
@click.argument("phonenumber")
@click.argument("text")
@sender_id_option
@click.option(
    "--sms-type",
    type=click.Choice(["T", "P"], case_sensitive=False),
    default=None,
    help="T transactional (default), P promotional.",
)
@click.option(
    "--encoding",
    type=click.Choice(["auto", "T", "U"], case_sensitive=False),
    default=None,
    help="auto (default): GSM text where it fits, else Unicode.",
)
@click.option("--uid", default=None, help="Your id for the message (default: a random one).")
@click.option("--callback-url", default=None, help="Where the delivery report is pushed.")
@click.option(
    "--method",
    type=click.Choice(["POST", "GET"], case_sensitive=False),
    default="POST",
    show_default=True,
    help="GET puts the password in the URL: prefer POST.",
)
@credentials_option
def send(
    phonenumber: str,
    text: str,
    sender_id: str | None,
    sms_type: str | None,
    encoding: str | None,
    uid: str | None,
    callback_url: str | None,
    method: str,
    credentials_file: Path | None,
) -> None:
    """Send one SMS to PHONENUMBER (country code and number) and print the gateway's answer.

    Credentials come from the environment (HAORUI_API_ID, HAORUI_API_PASSWORD,
    HAORUI_BASE_URL) or from --credentials-file, never from the command line. The sender id
    comes from --sender-id or HAORUI_SENDER_ID.

    Exit codes, by outcome kind: 0 sent; 1 failed, rejected or not_sent; 2 invalid (bad
    input or configuration, nothing sent); 3 unknown (it may have been sent).
    """
    creds = credentials(credentials_file)
    if sender_id is None:
        # Checked here, where the option's name is known: the SDK can only name its argument.
        raise BadInput(f"no sender id: give --sender-id or set {ENV_SENDER_ID}")
    fields = {
        "sender_id": sender_id,
        "sms_type": sms_type,
        "encoding": encoding,
        "uid": uid,
        "callback_url": callback_url,
    }
    # Everything happens inside the one event loop; the exit code is its result.
    raise SystemExit(asyncio.run(_send_command(creds, method.upper(), phonenumber, text, fields)))
