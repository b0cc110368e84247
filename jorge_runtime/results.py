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
    _check_kind(kind)
    await conn.execute("SELECT pg_notify($1, $2 || ':' || $3)", RESULTS_CHANNEL, kind, result_id)


def notify_result_sql(kind: str, result_id_parameter: str) -> str:
    """``notify_result`` as an SQL expression, for the statement that stores the result: the
    notification is sent when that statement's transaction commits. ``result_id_parameter`` is
    the statement's placeholder for the result id (``"$9"``)."""
    _check_kind(kind)
    return f"pg_notify('{RESULTS_CHANNEL}', '{kind}:' || {result_id_parameter}::text)"


def _check_kind(kind: str) -> None:
    if not kind.isidentifier():
        raise ValueError(f"a result kind is a plain identifier ({kind!r})")
