-- voicebook 0002: sessions.usage (what the agent reports it used: LLM tokens, STT seconds,
-- TTS characters, avatar seconds), the basis of the cost in the summary; idle-session index.
ALTER TABLE sessions ADD COLUMN usage jsonb NOT NULL DEFAULT '{}';
-- Open sessions by last activity, for ending idle ones.
CREATE INDEX sessions_open_updated ON sessions (updated_at) WHERE state <> 'ended';
