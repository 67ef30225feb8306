-- The queue part of a call (issue 15): the queue of the agents file its transfer went to, the
-- agent who answered, and how long the caller waited for them (NULL: never queued).
ALTER TABLE calls ADD COLUMN queue TEXT;
ALTER TABLE calls ADD COLUMN agent TEXT;
ALTER TABLE calls ADD COLUMN queue_wait_ms INTEGER;
-- Every agent state change (logged_out, available, ringing, on_call, wrap_up, break), with
-- the server whose ACD made it.
CREATE TABLE IF NOT EXISTS agent_states (
    agent TEXT NOT NULL,
    state TEXT NOT NULL,
    at_ms INTEGER NOT NULL,
    server TEXT
);
CREATE INDEX IF NOT EXISTS agent_states_by_agent ON agent_states (agent, at_ms);
