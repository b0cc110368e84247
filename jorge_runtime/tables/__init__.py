"""The one home of each shared table's SQL: the gateway writes a request, a worker its result,
crm_sync and the tools read them, and all of them call the table's module instead of keeping a
copy of its statements. Who writes and reads which table: docs/ARCHITECTURE.md."""
