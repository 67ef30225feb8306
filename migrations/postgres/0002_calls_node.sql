-- Which voxnav node answered the call (`node:` in the server config; the host name by
-- default): with several nodes writing to one database, ops can tell them apart.
ALTER TABLE calls ADD COLUMN IF NOT EXISTS node text;
