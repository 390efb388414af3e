-- Odoo neutralisation (odoo-bin neutralize, or "Neutralize" when duplicating a
-- database in the database manager): a staging copy of production must never
-- call the production registries with production credentials.
--
-- Every data source is switched off and back to draft, and every stored
-- secret is removed ('' removes a write-only secret of dci_client).  Without
-- the secrets a source cannot authenticate even if someone switches it on
-- again: the staging administrator enters staging credentials.  Signing keys
-- lose their private key and are revoked, so nothing can be signed in
-- production's name.
UPDATE dci_data_source
   SET active = false,
       state = 'draft',
       client_secret = '',
       bearer_token = '',
       client_key = '';

UPDATE dci_signing_key
   SET private_key = '',
       state = 'revoked';

-- the secret registries present to our callbacks, where the extension has it
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_attribute
                WHERE attrelid = to_regclass('dci_data_source') AND attname = 'callback_token'
                  AND NOT attisdropped) THEN
        EXECUTE 'UPDATE dci_data_source SET callback_token = ''''';
    END IF;
END
$$;

-- the Odoo model of the same sources (spp_dci_client), when it is installed
DO $$
BEGIN
    IF to_regclass('spp_dci_data_source') IS NOT NULL THEN
        UPDATE spp_dci_data_source SET active = false, state = 'draft';
    END IF;
END
$$;
