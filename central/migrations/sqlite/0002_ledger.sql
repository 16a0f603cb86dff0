-- What central decides after ingestion: reconciliation outcomes, fraud and
-- integrity flags with their audit trail, and issued settlements.
-- Keep in step with ../postgres/0002_ledger.sql: same tables, same columns.
-- Amounts are integer cents; instants and days are TEXT as elsewhere.

-- Per-benefit overuse tolerance (docs/reconciliation.md); none means zero.
CREATE TABLE ledger_policies (
    benefit TEXT PRIMARY KEY,
    tolerance_count INTEGER NOT NULL CHECK (tolerance_count >= 0),
    tolerance_cents INTEGER NOT NULL CHECK (tolerance_cents >= 0)
);

-- Which stored records the ledger has taken in, at which outcome. A record
-- missing here, or stored since with another outcome, is pending; deciding
-- a flag on a record deletes its row so that the next run takes it in again.
CREATE TABLE ledger_records (
    terminal TEXT NOT NULL,
    seq INTEGER NOT NULL,
    outcome TEXT NOT NULL,
    PRIMARY KEY (terminal, seq)
);

-- Usage lines: one per (record, cart line, benefit) of every record that
-- counts, with the latest reconciliation decision. Rewritten by re-runs;
-- what was paid lives in the settlement tables, which are never rewritten.
CREATE TABLE ledger_usage (
    terminal TEXT NOT NULL,
    seq INTEGER NOT NULL,
    line INTEGER NOT NULL,
    benefit TEXT NOT NULL,
    at TEXT NOT NULL,
    day TEXT NOT NULL,
    recipient TEXT NOT NULL,
    credential TEXT NOT NULL,
    provider TEXT NOT NULL,
    merchant TEXT NOT NULL,
    category TEXT NOT NULL,
    amount_cents INTEGER NOT NULL,
    units INTEGER NOT NULL,
    snapshot INTEGER NOT NULL,
    record_hash TEXT NOT NULL,
    -- 0 when the record no longer counts (a rejected flag): kept so that
    -- what was settled for it is credited back.
    counted INTEGER NOT NULL,
    outcome TEXT NOT NULL CHECK (outcome IN ('pending', 'payable', 'tolerated', 'reduced', 'not_payable', 'voided')),
    payable_cents INTEGER NOT NULL,
    payable_units INTEGER NOT NULL,
    conflicts TEXT NOT NULL,
    PRIMARY KEY (terminal, seq, line, benefit)
);
CREATE INDEX ledger_usage_day ON ledger_usage(day);

-- Voids the ledger took in: sale (terminal, voids) is cancelled by seq.
CREATE TABLE ledger_voids (
    terminal TEXT NOT NULL,
    voids INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY (terminal, seq)
);
CREATE INDEX ledger_voids_sale ON ledger_voids(terminal, voids);

-- Flags; `providers` is ",riga,state," (who may see it), like records.providers.
CREATE TABLE ledger_flags (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    subject TEXT NOT NULL,
    terminal TEXT,
    seq INTEGER,
    merchant TEXT,
    providers TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('open', 'accepted', 'rejected')),
    raised_at TEXT NOT NULL,
    evidence TEXT NOT NULL
);
CREATE INDEX ledger_flags_state ON ledger_flags(state);
CREATE INDEX ledger_flags_record ON ledger_flags(terminal, seq);

-- Append-only audit trail of flag decisions: the store never updates or
-- deletes a row; n counts from 1 per flag, so two concurrent decisions
-- cannot both append the same step.
CREATE TABLE ledger_flag_audit (
    flag TEXT NOT NULL REFERENCES ledger_flags(id),
    n INTEGER NOT NULL,
    who TEXT NOT NULL,
    role TEXT NOT NULL,
    at TEXT NOT NULL,
    from_state TEXT NOT NULL,
    to_state TEXT NOT NULL,
    note TEXT NOT NULL,
    PRIMARY KEY (flag, n)
);

-- Issued settlements: inserted once, never updated or deleted. Numbers and
-- creditor references are unique, and so is each (provider, merchant,
-- period, sequence): two central processes cannot issue the same one.
CREATE TABLE ledger_settlements (
    number TEXT PRIMARY KEY,
    provider TEXT NOT NULL,
    merchant TEXT NOT NULL,
    period TEXT NOT NULL,
    sequence INTEGER NOT NULL,
    creditor_reference TEXT NOT NULL UNIQUE,
    total_cents INTEGER NOT NULL,
    fingerprint TEXT NOT NULL,
    document TEXT NOT NULL,
    issued_at TEXT NOT NULL,
    UNIQUE (provider, merchant, period, sequence)
);

-- What each settlement settled per usage line, for the next settlement's
-- adjustments. Inserted with its settlement, never updated.
CREATE TABLE ledger_settled (
    number TEXT NOT NULL REFERENCES ledger_settlements(number),
    terminal TEXT NOT NULL,
    seq INTEGER NOT NULL,
    line INTEGER NOT NULL,
    benefit TEXT NOT NULL,
    amount_cents INTEGER NOT NULL,
    PRIMARY KEY (number, terminal, seq, line, benefit)
);

-- Invoice details of merchants and providers (legal name, registration
-- number, address, and the merchant's IBAN), as JSON.
CREATE TABLE ledger_parties (
    role TEXT NOT NULL CHECK (role IN ('provider', 'merchant')),
    id TEXT NOT NULL,
    details TEXT NOT NULL,
    PRIMARY KEY (role, id)
);
