"""The event contract next to /docs: /asyncapi (HTML) and /asyncapi.json, and what the gateway publishes.

The document is the committed one (``schemas/contract/asyncapi.json``, the JSON twin of
docs/asyncapi.yaml), generated from every service's brokers by ``jorge events schemas --write``;
the gateway only serves it, so it never needs the workers' code.
"""

from __future__ import annotations

import html
import json
from functools import cache
from importlib import resources
from typing import Any

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, JSONResponse
from faststream.kafka import KafkaBroker
from faststream.specification.asyncapi.site import ASYNCAPI_CSS_DEFAULT_URL, ASYNCAPI_JS_DEFAULT_URL

from schemas.buyers import BuyerMatchRequested
from schemas.envelope import EventEnvelope
from schemas.follow_ups import LeadEngagementRecorded
from schemas.leads import LeadQualificationRequested
from schemas.sellers import ConsultationRequested, SellerAnalysisRequested
from schemas.topics import (
    BUYER_MATCH_REQUESTED,
    LEAD_ENGAGEMENT_RECORDED,
    LEAD_QUALIFICATION_REQUESTED,
    SELLER_ANALYSIS_REQUESTED,
    SELLER_CONSULTATION_REQUESTED,
    WEBHOOK_DELIVERY_REQUESTED,
    TopicNames,
    TopicSpec,
)
from schemas.webhooks import WebhookDeliveryRequested

#: What the gateway publishes (through services.gateway.publishing), for the AsyncAPI document.
PUBLICATIONS: tuple[tuple[TopicSpec, type[EventEnvelope]], ...] = (
    (LEAD_QUALIFICATION_REQUESTED, LeadQualificationRequested),
    (BUYER_MATCH_REQUESTED, BuyerMatchRequested),
    (SELLER_ANALYSIS_REQUESTED, SellerAnalysisRequested),
    (SELLER_CONSULTATION_REQUESTED, ConsultationRequested),
    (WEBHOOK_DELIVERY_REQUESTED, WebhookDeliveryRequested),
    (LEAD_ENGAGEMENT_RECORDED, LeadEngagementRecorded),
)

CONTRACT_PACKAGE = "schemas.contract"
CONTRACT_FILE = "asyncapi.json"

router = APIRouter(include_in_schema=False)


def declare_publications(broker: KafkaBroker, topics: TopicNames) -> KafkaBroker:
    """Declare the gateway's publications on ``broker`` (for the document; nothing is sent)."""
    for spec, model in PUBLICATIONS:
        broker.publisher(topics(spec), title=model.__name__, schema=model, description=model.__doc__)
    return broker


@cache
def contract() -> dict[str, Any]:
    """The committed AsyncAPI document, read once."""
    text = resources.files(CONTRACT_PACKAGE).joinpath(CONTRACT_FILE).read_text(encoding="utf-8")
    document: dict[str, Any] = json.loads(text)
    return document


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<link rel="stylesheet" href="{css}"></head>
<body><div id="asyncapi"></div>
<script src="{js}"></script>
<script>
fetch("asyncapi.json").then(r => r.json()).then(schema => AsyncApiStandalone.render(
  {{schema, config: {{show: {{sidebar: true}}}}}}, document.getElementById("asyncapi")));
</script></body></html>
"""


@router.get("/asyncapi.json")
async def asyncapi_json() -> JSONResponse:
    """The AsyncAPI 3 document of every topic (see docs/EVENTS.md)."""
    return JSONResponse(contract())


@router.get("/asyncapi")
async def asyncapi_html() -> HTMLResponse:
    """The AsyncAPI document rendered by AsyncAPI's React component."""
    title = contract()["info"]["title"]
    return HTMLResponse(
        _PAGE.format(title=html.escape(title), css=ASYNCAPI_CSS_DEFAULT_URL, js=ASYNCAPI_JS_DEFAULT_URL)
    )
