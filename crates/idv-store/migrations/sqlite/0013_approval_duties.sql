-- Separation of duties for approvals: who asked for the decision that
-- needed approval, the rule of who may approve and how many must, and the
-- approvals given so far (JSON text). Existing approvals keep the old rule:
-- any one approver.
ALTER TABLE approvals ADD COLUMN requested_by TEXT NOT NULL DEFAULT '{}';
ALTER TABLE approvals ADD COLUMN rule TEXT NOT NULL DEFAULT '{"approvers":[{"kind":"any"}],"required":1}';
ALTER TABLE approvals ADD COLUMN approvals TEXT NOT NULL DEFAULT '[]';
