"""The shim's SQLite database: its schema and group commit (`store`), and one module per
table group (`registry`, `counters`, `audit`, `mailboxes`, `distributions`, `portfolio`).
Every SQL statement of the shim is here."""
