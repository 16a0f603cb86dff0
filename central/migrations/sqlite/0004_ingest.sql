-- The packet whose arrival resolved a `held` record, so that a replay of
-- that packet is answered as the first time (with the resolved records).
ALTER TABLE records ADD COLUMN resolved_by TEXT;
CREATE INDEX records_resolved_by ON records(resolved_by) WHERE resolved_by IS NOT NULL;

-- What ingestion checks a record's claims against (SQLite). Keep in step
-- with ../postgres/0004_ingest.sql.
--
-- A record names the entitlements its terminal relied on, as the terminal's
-- snapshot gave them. Grants and memberships are upserted in place, so the
-- validity a terminal knew may since have changed: every version central
-- ever held is kept here, with `known_from`, the first snapshot version
-- that can contain it. Rows are only ever added.
CREATE TABLE entitlement_versions (
    recipient TEXT NOT NULL,
    source TEXT NOT NULL CHECK (source IN ('grant', 'membership')),
    -- The benefit id of a grant, the group id of a membership.
    key TEXT NOT NULL,
    valid_from TEXT,
    valid_to TEXT,
    known_from INTEGER NOT NULL
);
CREATE INDEX entitlement_versions_recipient ON entitlement_versions(recipient);

-- The groups each benefit named, per version, for entitlements that come
-- from a membership. `known_from` is the benefit's published change seq.
CREATE TABLE benefit_groups_versions (
    benefit TEXT NOT NULL,
    groups TEXT NOT NULL,
    known_from INTEGER NOT NULL
);
CREATE INDEX benefit_groups_versions_benefit ON benefit_groups_versions(benefit);

-- What is already stored was known before any record can be checked here.
INSERT INTO entitlement_versions (recipient, source, key, valid_from, valid_to, known_from)
    SELECT recipient, 'grant', benefit, valid_from, valid_to, 0 FROM grants;
INSERT INTO entitlement_versions (recipient, source, key, valid_from, valid_to, known_from)
    SELECT recipient, 'membership', grp, valid_from, valid_to, 0 FROM memberships;
INSERT INTO benefit_groups_versions (benefit, groups, known_from)
    SELECT id, COALESCE(json_extract(definition, '$.groups'), '[]'), 0 FROM benefits;

-- backend-specific: begin
-- One writer at a time, and every writer logs its changes after writing
-- grants and memberships, in the same transaction: the next change seq is
-- the first snapshot version that can contain the new version.
CREATE TRIGGER grants_versions_insert AFTER INSERT ON grants
BEGIN
    INSERT INTO entitlement_versions (recipient, source, key, valid_from, valid_to, known_from)
    VALUES (NEW.recipient, 'grant', NEW.benefit, NEW.valid_from, NEW.valid_to,
            (SELECT COALESCE(MAX(seq), 0) + 1 FROM changes));
END;
CREATE TRIGGER grants_versions_update AFTER UPDATE ON grants
WHEN OLD.valid_from IS NOT NEW.valid_from OR OLD.valid_to IS NOT NEW.valid_to
BEGIN
    INSERT INTO entitlement_versions (recipient, source, key, valid_from, valid_to, known_from)
    VALUES (NEW.recipient, 'grant', NEW.benefit, NEW.valid_from, NEW.valid_to,
            (SELECT COALESCE(MAX(seq), 0) + 1 FROM changes));
END;
CREATE TRIGGER memberships_versions_insert AFTER INSERT ON memberships
BEGIN
    INSERT INTO entitlement_versions (recipient, source, key, valid_from, valid_to, known_from)
    VALUES (NEW.recipient, 'membership', NEW.grp, NEW.valid_from, NEW.valid_to,
            (SELECT COALESCE(MAX(seq), 0) + 1 FROM changes));
END;
CREATE TRIGGER memberships_versions_update AFTER UPDATE ON memberships
WHEN OLD.valid_from IS NOT NEW.valid_from OR OLD.valid_to IS NOT NEW.valid_to
BEGIN
    INSERT INTO entitlement_versions (recipient, source, key, valid_from, valid_to, known_from)
    VALUES (NEW.recipient, 'membership', NEW.grp, NEW.valid_from, NEW.valid_to,
            (SELECT COALESCE(MAX(seq), 0) + 1 FROM changes));
END;
CREATE TRIGGER benefits_groups_insert AFTER INSERT ON benefits
BEGIN
    INSERT INTO benefit_groups_versions (benefit, groups, known_from)
    VALUES (NEW.id, COALESCE(json_extract(NEW.definition, '$.groups'), '[]'), NEW.published_seq);
END;
CREATE TRIGGER benefits_groups_update AFTER UPDATE ON benefits
WHEN OLD.definition IS NOT NEW.definition
BEGIN
    INSERT INTO benefit_groups_versions (benefit, groups, known_from)
    VALUES (NEW.id, COALESCE(json_extract(NEW.definition, '$.groups'), '[]'), NEW.published_seq);
END;
-- backend-specific: end
