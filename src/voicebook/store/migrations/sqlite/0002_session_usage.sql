-- voicebook 0002: what the agent reports it used, the basis of the cost in the summary.
ALTER TABLE sessions ADD COLUMN usage TEXT NOT NULL DEFAULT '{}';
