-- What settlements settled, per usage line (sqlite). Keep in step with
-- ../postgres/0007_settled_marker.sql.
--
-- Issuing a settlement needs the lines of its period and, from earlier
-- periods, only the lines whose payable amount differs from what was
-- settled for them (late arrivals, late voids, rejected flags). Each line
-- carries the sum of its settled items (kept by the issuing transaction,
-- and restored from ledger_settled when a record is taken in again), so
-- that a partial index over the lines still owing an adjustment finds them
-- without reading history.
ALTER TABLE ledger_usage ADD COLUMN settled_cents INTEGER NOT NULL DEFAULT 0;

-- Looked up per line when a record is taken in again.
CREATE INDEX ledger_settled_line ON ledger_settled(terminal, seq, line, benefit);

UPDATE ledger_usage SET settled_cents = COALESCE((
    SELECT SUM(s.amount_cents) FROM ledger_settled s
    WHERE s.terminal = ledger_usage.terminal AND s.seq = ledger_usage.seq
      AND s.line = ledger_usage.line AND s.benefit = ledger_usage.benefit), 0);

CREATE INDEX ledger_usage_unsettled ON ledger_usage(day) WHERE payable_cents <> settled_cents;
