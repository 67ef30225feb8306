-- Call records (docs/records.md). IF NOT EXISTS: databases made before migrations were
-- tracked already have these tables, and this step then only records its version.
CREATE TABLE IF NOT EXISTS calls (
    call_id          TEXT PRIMARY KEY,
    caller           TEXT NOT NULL,
    hotline          TEXT NOT NULL,
    dialplan_version INTEGER NOT NULL,
    started_ms       INTEGER NOT NULL,
    ended_ms         INTEGER,
    outcome          TEXT,
    transfer_reason  TEXT
);
CREATE INDEX IF NOT EXISTS calls_by_start ON calls (started_ms);
CREATE TABLE IF NOT EXISTS turns (
    call_id  TEXT NOT NULL REFERENCES calls (call_id) ON DELETE CASCADE,
    seq      INTEGER NOT NULL,
    at_ms    INTEGER NOT NULL,
    input    TEXT NOT NULL,
    intent   TEXT,
    decision TEXT NOT NULL,
    node     TEXT NOT NULL,
    record   TEXT NOT NULL,
    PRIMARY KEY (call_id, seq)
);
