-- Call records (docs/records.md): the SQLite schema with PostgreSQL's types. Every integer
-- is bigint (Unix milliseconds do not fit an integer), and the decision record is jsonb.
CREATE TABLE IF NOT EXISTS calls (
    call_id          text PRIMARY KEY,
    caller           text NOT NULL,
    hotline          text NOT NULL,
    dialplan_version bigint NOT NULL,
    started_ms       bigint NOT NULL,
    ended_ms         bigint,
    outcome          text,
    transfer_reason  text
);
CREATE INDEX IF NOT EXISTS calls_by_start ON calls (started_ms);
CREATE TABLE IF NOT EXISTS turns (
    call_id  text NOT NULL REFERENCES calls (call_id) ON DELETE CASCADE,
    seq      bigint NOT NULL,
    at_ms    bigint NOT NULL,
    input    text NOT NULL,
    intent   text,
    decision text NOT NULL,
    node     text NOT NULL,
    record   jsonb NOT NULL,
    PRIMARY KEY (call_id, seq)
);
