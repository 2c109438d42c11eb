-- voicebook 0005: a session's tool calls without reading its other events (GET /session/{id}/tools
-- pages through them in SQL; transcripts and summaries stay on disk).
CREATE INDEX session_events_tool_calls ON session_events (session_id, id) WHERE type = 'tool_call';
