-- voicebook 0002: what the agent reports it used, the basis of the cost in the summary.
ALTER TABLE sessions ADD COLUMN usage TEXT NOT NULL DEFAULT '{}';
-- Open sessions by last activity, for ending idle ones.
CREATE INDEX sessions_open_updated ON sessions (updated_at) WHERE state <> 'ended';
