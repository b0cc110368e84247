"""A responder for the fake Messages API that answers like a careful model would: it reads the
lead's message out of the request and qualifies it with the rules, plus a reply."""

from __future__ import annotations

import re
from typing import Any

from schemas.leads import LeadToQualify
from services.qualifier.prompts import SERVER_FIELDS
from services.qualifier.rules import qualify_lead

_MESSAGE_RE = re.compile(r"<message>(.*?)</message>", re.DOTALL)
REPLY = "Thanks! Would you like to see a few homes this weekend?"


def lead_message(body: dict[str, Any]) -> str:
    """The lead's message inside the request's user turn."""
    content = body["messages"][-1]["content"]
    text = content if isinstance(content, str) else " ".join(block.get("text", "") for block in content)
    match = _MESSAGE_RE.search(text)
    return match[1] if match else ""


def rules_responder(body: dict[str, Any]) -> dict[str, Any]:
    """Tool input: the rules' reading of the message (no platform fields) and a reply."""
    qualification = qualify_lead(LeadToQualify(lead_id="fake", message=lead_message(body)))
    answer = qualification.model_dump(mode="json", exclude=set(SERVER_FIELDS))
    return answer | {"suggested_reply": REPLY, "temperature_reasons": ["read by the fake model"]}
