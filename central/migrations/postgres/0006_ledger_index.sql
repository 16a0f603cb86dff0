-- Indexes of the ledger's recurring queries (postgres). Keep in step with
-- ../sqlite/0006_ledger_index.sql.
--
-- Each run asks where undecided lines start, per benefit
-- (`SELECT benefit, MIN(day) FROM ledger_usage WHERE outcome = 'pending'
-- GROUP BY benefit`). Without an index that reads the whole usage table,
-- which only grows; undecided lines are few (those of the last packets),
-- so a partial index over them alone is small and answers at once.
CREATE INDEX ledger_usage_pending ON ledger_usage(benefit, day) WHERE outcome = 'pending';

-- Flag listings are ordered by (raised_at, id) and paged by a cursor on
-- that order (`GET /api/v1/flags?after=`): a page starts where the index
-- says, instead of sorting every flag again.
CREATE INDEX ledger_flags_order ON ledger_flags(raised_at, id);
