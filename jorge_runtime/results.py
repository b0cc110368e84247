"""Telling gateways that a worker stored a result, through PostgreSQL's LISTEN/NOTIFY.

A worker that finishes a qualification, a match session or a seller analysis calls ``notify_result`` in the
transaction that stores the result. PostgreSQL delivers the notification only when that
transaction commits, so a gateway woken by it always finds the result.
"""

from __future__ import annotations

from jorge_runtime.db import DbConnection

#: The channel every gateway LISTENs on; payloads are ``"<kind>:<result id>"``.
RESULTS_CHANNEL = "jorge_results"

#: Result kinds: a lead's qualification (qualifications.qualification_id), a buyer's match
#: session (match_sessions.id) and a seller analysis (seller_analyses.id).
QUALIFICATION = "qualification"
MATCH_SESSION = "match_session"
SELLER_ANALYSIS = "seller_analysis"


async def notify_result(conn: DbConnection, kind: str, result_id: str) -> None:
    """Announce that the result ``result_id`` of ``kind`` is stored; sent when ``conn`` commits.

    Call it inside the transaction that writes the result (status completed or failed).
    """
    if ":" in kind:
        raise ValueError(f"a result kind cannot contain ':' ({kind!r})")
    await conn.execute("SELECT pg_notify($1, $2 || ':' || $3)", RESULTS_CHANNEL, kind, result_id)
