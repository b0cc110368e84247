"""The one place that names every Kafka topic, its partition count and what travels on it.

Every name can be prefixed (``KAFKA_TOPIC_PREFIX``) so that tests, or several environments on
one cluster, never read each other's messages. Events are keyed by the lead, buyer or seller
id, so one entity's events stay in order on one partition.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """A topic's unprefixed name, partition count and purpose."""

    name: str
    partitions: int
    description: str


LEAD_QUALIFICATION_REQUESTED = TopicSpec(
    "lead.qualification_requested", 6, "Gateway -> qualifier: a lead to qualify (LeadQualificationRequested)."
)
LEAD_QUALIFIED = TopicSpec(
    "lead.qualified", 6, "Qualifier -> matcher, crm_sync: a completed qualification (LeadQualified)."
)
BUYER_MATCH_REQUESTED = TopicSpec(
    "buyer.match_requested", 6, "Gateway -> matcher: a buyer's search to run (BuyerMatchRequested)."
)
BUYER_MATCHED = TopicSpec("buyer.matched", 6, "Matcher -> crm_sync: a stored match session (BuyerMatched).")
SELLER_ANALYSIS_REQUESTED = TopicSpec(
    "seller.analysis_requested", 6, "Gateway -> seller_analyzer: a home to price (SellerAnalysisRequested)."
)
SELLER_ANALYZED = TopicSpec(
    "seller.analyzed", 6, "Seller analyzer -> crm_sync: a stored CMA (SellerAnalyzed)."
)
SELLER_CONSULTATION_REQUESTED = TopicSpec(
    "seller.consultation_requested",
    6,
    "Gateway -> crm_sync: a seller asked for a consultation (ConsultationRequested).",
)
WEBHOOK_DELIVERY_REQUESTED = TopicSpec(
    "webhook.delivery_requested",
    6,
    "Gateway -> crm_sync: a test event or a manual redelivery to send (WebhookDeliveryRequested).",
)
LEAD_ENGAGEMENT_RECORDED = TopicSpec(
    "lead.engagement_recorded",
    6,
    "Gateway -> crm_sync: a lead replied, booked, said no or opted out (LeadEngagementRecorded).",
)
LEAD_FOLLOW_UP_DUE = TopicSpec(
    "lead.follow_up_due", 6, "crm_sync -> anyone: a follow-up step was carried out (LeadFollowUpDue)."
)
DEAD_LETTER = TopicSpec(
    "dead_letter", 3, "Messages a consumer could not process, with the reason and origin in headers."
)
WEBHOOK_ENDPOINT_DISABLED = TopicSpec(
    "webhook.endpoint_disabled",
    3,
    "crm_sync -> whoever tells the organisation: the delivery engine disabled a webhook endpoint "
    "(WebhookEndpointDisabled).",
)

# crm_sync's own topics: priority lanes (hot leads never queue behind cold ones) and five
# delay topics, one per retry delay, so each is ordered by due time.
CRM_LANE_HOT = TopicSpec("crm_sync.lane.hot", 6, "crm_sync intake -> crm_sync: hot leads and consultations.")
CRM_LANE_STANDARD = TopicSpec("crm_sync.lane.standard", 6, "crm_sync intake -> crm_sync: everything else.")
CRM_RETRY_TOPICS: tuple[TopicSpec, ...] = tuple(
    TopicSpec(f"crm_sync.retry.{n}", 3, f"crm_sync -> crm_sync: CRM writes waiting for retry delay {n}.")
    for n in range(1, 6)
)

ALL_TOPICS: tuple[TopicSpec, ...] = (
    LEAD_QUALIFICATION_REQUESTED,
    LEAD_QUALIFIED,
    BUYER_MATCH_REQUESTED,
    BUYER_MATCHED,
    SELLER_ANALYSIS_REQUESTED,
    SELLER_ANALYZED,
    SELLER_CONSULTATION_REQUESTED,
    WEBHOOK_DELIVERY_REQUESTED,
    LEAD_ENGAGEMENT_RECORDED,
    LEAD_FOLLOW_UP_DUE,
    DEAD_LETTER,
    WEBHOOK_ENDPOINT_DISABLED,
    CRM_LANE_HOT,
    CRM_LANE_STANDARD,
    *CRM_RETRY_TOPICS,
)


@dataclass(frozen=True, slots=True)
class TopicNames:
    """Resolves topic names under one prefix; built once in each composition root."""

    prefix: str = ""

    def __call__(self, spec: TopicSpec) -> str:
        return f"{self.prefix}{spec.name}"

    def all(self) -> dict[str, int]:
        """Every topic's full name mapped to its partition count."""
        return {self(spec): spec.partitions for spec in ALL_TOPICS}
