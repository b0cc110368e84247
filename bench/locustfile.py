"""The locust users of bench/load_test.py: integrators using the API as the client's seed describes.

Each user has an API key of its own (JORGE_LOAD_KEYS, comma-separated; the default per-key
limits of 10/s and 100/min apply) and, about once a second, does what an integrator does:
qualify a new lead (with an Idempotency-Key) and read its qualification back, ask for buyer
matches, or ask for a seller's CMA. Any answer other than the documented success is a failure,
429s included.
"""

from __future__ import annotations

import itertools
import os
import uuid

from locust import HttpUser, between, task

_KEYS = os.environ.get("JORGE_LOAD_KEYS", "").split(",")
_NEXT = itertools.count()
_MESSAGE = "Pre-approved for $750k, looking for a 3 bed in Victoria, moving in 2 months"


class Integrator(HttpUser):
    wait_time = between(0.5, 1.5)

    def on_start(self) -> None:
        key = _KEYS[next(_NEXT) % len(_KEYS)]
        self.client.headers.update({"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
        self.leads: list[str] = []

    @task(5)
    def qualify_lead(self) -> None:
        lead_id = f"load-{uuid.uuid4().hex[:12]}"
        body = {"lead_id": lead_id, "name": "Maria Lopez", "phone": "+1 909 555 0143", "message": _MESSAGE}
        with self.client.post("/v1/leads/qualify", json=body, headers={"Idempotency-Key": lead_id},
                              name="/v1/leads/qualify", catch_response=True) as answer:  # fmt: skip
            if answer.status_code == 201:
                self.leads.append(lead_id)
                answer.success()
            else:
                answer.failure(f"{answer.status_code}")

    @task(3)
    def read_qualification(self) -> None:
        if not self.leads:
            return
        lead_id = self.leads[-1]
        self.client.get(f"/v1/leads/{lead_id}/qualification", name="/v1/leads/{lead_id}/qualification")

    @task(1)
    def match_properties(self) -> None:
        body = {"buyer_id": f"buyer-{uuid.uuid4().hex[:8]}", "budget_min": 600000, "budget_max": 800000,
                "bedrooms": [3, 4], "neighborhoods": ["Victoria", "Haven"]}  # fmt: skip
        self.client.post("/v1/buyers/match-properties", json=body, name="/v1/buyers/match-properties")

    @task(1)
    def analyze_home(self) -> None:
        body = {"seller_id": f"seller-{uuid.uuid4().hex[:8]}", "bedrooms": 4, "bathrooms": 2.5,
                "property_address": "456 Oak Ave, Rancho Cucamonga, CA", "square_feet": 2500,
                "condition": "good"}  # fmt: skip
        self.client.post("/v1/sellers/analyze", json=body, name="/v1/sellers/analyze")
