-- voicebook 0002: what the agent reports it used (LLM tokens, STT seconds, TTS characters,
-- avatar seconds), the basis of the cost in the summary.
ALTER TABLE sessions ADD COLUMN usage jsonb NOT NULL DEFAULT '{}';
