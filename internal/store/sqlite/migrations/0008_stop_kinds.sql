-- A stop-list entry is either one of the project's own lines (a SIP login or
-- an FMC/virtual number: a call to or from it creates nothing) or a client
-- number (calls with that client create nothing). Entries made before kinds
-- existed were documented as project numbers, so they become lines; a line
-- entry also blocks calls where it is the client end, so none of them stops
-- blocking what it blocked before.
ALTER TABLE stop_list ADD COLUMN kind TEXT NOT NULL DEFAULT 'line' CHECK (kind IN ('line', 'client'));
