-- The agent's wrap-up of a call (issue 15, the agent desktop): the code they chose (a
-- contact centre's disposition: resolved, follow_up, ...), their notes, and when.
ALTER TABLE calls ADD COLUMN wrap_up_code TEXT;
ALTER TABLE calls ADD COLUMN wrap_up_notes TEXT;
ALTER TABLE calls ADD COLUMN wrap_up_ms INTEGER;
