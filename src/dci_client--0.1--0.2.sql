-- dci_client 0.1 -> 0.2.  A fresh CREATE EXTENSION of 0.2 runs the 0.1
-- script and then this one, so new and upgraded databases are the same.
\echo Use "ALTER EXTENSION dci_client UPDATE TO '0.2'" to load this file. \quit

-- registry_type: any ns:org:RegistryType:<Name>, as registries report it
-- (e.g. ns:org:RegistryType:CRVS).  The row trigger checks it and names the
-- column; the old list of five is gone.
ALTER TABLE dci_data_source DROP CONSTRAINT dci_data_source_registry_type_check;

-- Nothing of the extension resolves an object by name at call time: the
-- database owner owns "public" and could rename it and plant look-alikes.
-- dci_clear_secret is C (the table found by OID); dci_search_by_id has a
-- SQL-standard body, parsed once here and bound by OID.
CREATE OR REPLACE FUNCTION dci_clear_secret(source text, column_name text) RETURNS void
    AS 'MODULE_PATHNAME', 'dci_clear_secret' LANGUAGE C VOLATILE PARALLEL UNSAFE;
CREATE OR REPLACE FUNCTION dci_clear_secret(source integer, column_name text) RETURNS void
    AS 'MODULE_PATHNAME', 'dci_clear_secret' LANGUAGE C VOLATILE PARALLEL UNSAFE;

CREATE OR REPLACE FUNCTION dci_search_by_id(source text, id_type text, id_value text) RETURNS SETOF jsonb
    LANGUAGE sql VOLATILE ROWS 1
BEGIN ATOMIC
    SELECT r FROM dci_search_records(source, 'idtype-value'::text,
        pg_catalog.jsonb_build_object('type', id_type, 'value', id_value)) AS r;
END;
CREATE OR REPLACE FUNCTION dci_search_by_id(source integer, id_type text, id_value text) RETURNS SETOF jsonb
    LANGUAGE sql VOLATILE ROWS 1
BEGIN ATOMIC
    SELECT r FROM dci_search_records(source, 'idtype-value'::text,
        pg_catalog.jsonb_build_object('type', id_type, 'value', id_value)) AS r;
END;
