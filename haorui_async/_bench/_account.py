"""The account and the message every client sends: the same SendSMS request for all of them."""

from __future__ import annotations

import json
from typing import Final

#: The documented example account; the emulator accepts it as its demo account.
FALLBACK_API_ID: Final = "API43404236"
FALLBACK_API_PASSWORD: Final = "demo-password"
#: The demo account's registered sender id.
SENDER_ID: Final = "HAORUI"
PHONENUMBER: Final = "8613912345678"
TEXTMESSAGE: Final = "Your code is 112233"
SEND_SMS_PATH: Final = "/api/SendSMS"


def demo_account() -> tuple[str, str]:
    """The emulator's demo `(api_id, api_password)`, or the documented example without it."""
    try:
        from ..testing import DEMO_API_ID, DEMO_API_PASSWORD
    except ImportError:  # pragma: no cover - the emulator ships with the package
        return FALLBACK_API_ID, FALLBACK_API_PASSWORD
    return DEMO_API_ID, DEMO_API_PASSWORD


def payload(uid: str = "bench-1") -> dict[str, str]:
    """The SendSMS JSON parameters a hand-written client posts."""
    api_id, password = demo_account()
    return {
        "api_id": api_id,
        "api_password": password,
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
