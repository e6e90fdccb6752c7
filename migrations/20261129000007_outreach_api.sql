-- Outreach API: a patient must be reachable.

-- The API refuses a patient with neither an email address nor a phone number; the constraint
-- keeps other writers (imports, the CLI, future code) to the same rule. NOT VALID: it binds every
-- row written from now on without failing the migration on rows written before the rule.
alter table patients
    add constraint patients_reachable check (email is not null or phone is not null) not valid;
