-- Rotations are driven by a worker, not by the request that started them: the record
-- keeps the pause (`until`) the worker honours across restarts, and who started it,
-- whom the worker's audit entries name. Older rows have no pause and an unknown starter.
-- `switched` stays, written from the step and status, for readers of older versions.

ALTER TABLE rotations ADD COLUMN paused_after TEXT;
ALTER TABLE rotations ADD COLUMN started_by TEXT NOT NULL DEFAULT '-';
CREATE INDEX rotations_by_tenant ON rotations (tenant_id, started_at);
