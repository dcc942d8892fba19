"""The account and the message every client sends: the same SendSMS request for all of them."""

from __future__ import annotations

import json
from typing import Final

from haorui_async.testing import DEMO_API_ID, DEMO_API_PASSWORD, DEMO_SENDER_ID

#: The demo account and sender id the emulator accepts.
API_ID: Final = DEMO_API_ID
API_PASSWORD: Final = DEMO_API_PASSWORD
SENDER_ID: Final = DEMO_SENDER_ID
PHONENUMBER: Final = "8613912345678"
TEXTMESSAGE: Final = "Your code is 112233"


def payload(uid: str = "bench-1") -> dict[str, str]:
    """The SendSMS JSON parameters a hand-written client posts."""
    return {
        "api_id": API_ID,
        "api_password": API_PASSWORD,
        "sms_type": "T",
        "encoding": "T",
        "sender_id": SENDER_ID,
        "phonenumber": PHONENUMBER,
        "textmessage": TEXTMESSAGE,
        "uid": uid,
    }


def payload_bytes(uid: str = "bench-1") -> bytes:
    """`payload()` as the compact JSON body."""
    return json.dumps(payload(uid), separators=(",", ":")).encode("ascii")
