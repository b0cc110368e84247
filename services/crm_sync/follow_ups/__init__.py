"""Follow-up cadences: a plan per qualified lead, its steps kept in PostgreSQL and carried out by
whichever crm_sync replica claims them (domain.py pure; repository.py, scheduler.py, handlers.py,
install.py the adapters and wiring)."""
