-- People behind pseudonymous recipients, for the recipient portal and
-- reports. Keep in step with ../postgres/0003_people.sql.
-- Nothing here is read by snapshot code: personal data never reaches a terminal.

-- Birth dates are personal data: beside the personal code and name.
ALTER TABLE recipient_personal ADD COLUMN birth_date TEXT;
CREATE INDEX recipient_personal_code ON recipient_personal(personal_code);

-- A guardian (parent) of a child, both recipient references, as a provider imported it.
CREATE TABLE guardians (
    guardian TEXT NOT NULL REFERENCES recipients(id),
    child TEXT NOT NULL REFERENCES recipients(id),
    provider TEXT NOT NULL,
    PRIMARY KEY (guardian, child)
);
CREATE INDEX guardians_child ON guardians(child);

-- Tokens of the state portal: a role apart from staff tokens, so that no
-- staff token reads a person's view and no portal token reads reports.
CREATE TABLE portal_tokens (
    hash TEXT PRIMARY KEY,
    label TEXT NOT NULL
);

-- Who asked for which person: the personal code only as a keyed hash.
CREATE TABLE portal_access (
    at TEXT NOT NULL,
    client TEXT NOT NULL,
    person_hash TEXT NOT NULL,
    found INTEGER NOT NULL
);
CREATE INDEX portal_access_person ON portal_access(person_hash);

-- Expected spending per benefit and month, for the provider report.
CREATE TABLE budgets (
    benefit TEXT NOT NULL,
    month TEXT NOT NULL,
    provider TEXT NOT NULL,
    expected_cents INTEGER NOT NULL,
    PRIMARY KEY (benefit, month)
);

-- Reports read a merchant's period and the portal a recipient's records.
CREATE INDEX records_merchant_at ON records(merchant, at);
CREATE INDEX records_recipient_at ON records(recipient, at);
