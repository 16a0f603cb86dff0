-- The packet whose arrival resolved a `held` record, so that a replay of
-- that packet is answered as the first time (with the resolved records).
ALTER TABLE records ADD COLUMN resolved_by TEXT;
CREATE INDEX records_resolved_by ON records(resolved_by) WHERE resolved_by IS NOT NULL;

-- What ingestion checks a record's claims against (PostgreSQL). Keep in
-- step with ../sqlite/0004_ingest.sql.
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
    known_from BIGINT NOT NULL
);
CREATE INDEX entitlement_versions_recipient ON entitlement_versions(recipient);

-- The groups each benefit named, per version, for entitlements that come
-- from a membership. `known_from` is the benefit's published change seq.
CREATE TABLE benefit_groups_versions (
    benefit TEXT NOT NULL,
    groups TEXT NOT NULL,
    known_from BIGINT NOT NULL
);
CREATE INDEX benefit_groups_versions_benefit ON benefit_groups_versions(benefit);

-- What is already stored was known before any record can be checked here.
INSERT INTO entitlement_versions (recipient, source, key, valid_from, valid_to, known_from)
    SELECT recipient, 'grant', benefit, valid_from, valid_to, 0 FROM grants;
INSERT INTO entitlement_versions (recipient, source, key, valid_from, valid_to, known_from)
    SELECT recipient, 'membership', grp, valid_from, valid_to, 0 FROM memberships;
INSERT INTO benefit_groups_versions (benefit, groups, known_from)
    SELECT id, COALESCE((definition::jsonb -> 'groups')::TEXT, '[]'), 0 FROM benefits;

-- backend-specific: begin
-- Writers of grants and memberships take the change-log lock before they
-- log their changes and hold it until commit, so at commit the highest
-- change seq is this transaction's own last one: the first snapshot version
-- that can contain the new version. Hence a trigger deferred to commit.
CREATE FUNCTION entitlement_version() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND OLD.valid_from IS NOT DISTINCT FROM NEW.valid_from
        AND OLD.valid_to IS NOT DISTINCT FROM NEW.valid_to THEN
        RETURN NULL;
    END IF;
    INSERT INTO entitlement_versions (recipient, source, key, valid_from, valid_to, known_from)
    VALUES (NEW.recipient, TG_ARGV[0],
            CASE WHEN TG_ARGV[0] = 'grant' THEN to_jsonb(NEW) ->> 'benefit' ELSE to_jsonb(NEW) ->> 'grp' END,
            NEW.valid_from, NEW.valid_to,
            (SELECT COALESCE(MAX(seq), 0) FROM changes));
    RETURN NULL;
END;
$$;
CREATE CONSTRAINT TRIGGER grants_versions AFTER INSERT OR UPDATE ON grants
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION entitlement_version('grant');
CREATE CONSTRAINT TRIGGER memberships_versions AFTER INSERT OR UPDATE ON memberships
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION entitlement_version('membership');

CREATE FUNCTION benefit_groups_version() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND OLD.definition IS NOT DISTINCT FROM NEW.definition THEN
        RETURN NULL;
    END IF;
    INSERT INTO benefit_groups_versions (benefit, groups, known_from)
    VALUES (NEW.id, COALESCE((NEW.definition::jsonb -> 'groups')::TEXT, '[]'), NEW.published_seq);
    RETURN NULL;
END;
$$;
CREATE TRIGGER benefits_groups AFTER INSERT OR UPDATE ON benefits
    FOR EACH ROW EXECUTE FUNCTION benefit_groups_version();
-- backend-specific: end
