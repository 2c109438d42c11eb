-- voicebook 0010: who made an appointment what it is now — the caller (through the tools) or the
-- business's operator (from the console): the booking, the cancel, a move's old and new rows.
-- Existing rows say nothing (NULL): every change before this version was a caller's or unknown.
ALTER TABLE appointments ADD COLUMN changed_by TEXT CHECK (changed_by IN ('caller', 'operator'));
