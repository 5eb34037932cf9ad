-- The least-privileged role both database benchmarks connect as (over a superuser the
-- gateway does not serve `query`; Toolbox requires a password, trust auth ignores it).
-- Each script then creates its table and grants SELECT on it to this role.
SET client_min_messages = warning;
DO $$ BEGIN CREATE ROLE mcpgate_bench LOGIN PASSWORD 'bench'; EXCEPTION WHEN duplicate_object THEN NULL; END $$;
