-- Which voxnav server (node of a cluster) answered the call (`server_name:` in the config;
-- the host name by default): with several nodes writing to one database, ops can tell them
-- apart. ("node" alone would be confused with the dialplan node of each turn.)
ALTER TABLE calls ADD COLUMN IF NOT EXISTS server text;
