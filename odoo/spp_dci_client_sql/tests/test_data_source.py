import unittest

from odoo.exceptions import UserError, ValidationError
from odoo.tests import tagged

from .common import CLIENT_SECRET, REGISTRY_URL, DCISQLCase


@tagged("post_install", "-at_install")
class TestDataSource(DCISQLCase):
    def test_secret_written_through_never_stored(self):
        code = self.new_code()
        rec = self.Source.create(self.source_vals(code))
        self.env.cr.execute("SELECT oauth2_client_secret, bearer_token FROM spp_dci_data_source WHERE id = %s",
                            (rec.id,))
        self.assertEqual(self.env.cr.fetchone(), (None, None))
        self.assertEqual(self.sql_row(code, "client_secret", "client_secret_set"), (None, True))
        self.assertEqual(rec.oauth2_client_secret_display, rec._SECRET_MASK)

    def test_secrets_read_back_as_the_mask(self):
        rec = self.Source.create(self.source_vals(self.new_code()))
        rec.dci_callback_token = "Zq9-odoo-callback-token"
        rec.oauth2_client_secret_display = "Zq9-odoo-new-secret"
        self.assertEqual(rec.dci_callback_token, rec._SECRET_MASK)
        self.assertEqual(rec.oauth2_client_secret_display, rec._SECRET_MASK)
        self.assertTrue(rec.dci_callback_token_set)

    def test_secret_from_the_form_display_field(self):
        """The form sends only oauth2_client_secret_display (newest upstream
        translates it in create/write): written through, never in Odoo's row."""
        code = self.new_code()
        vals = self.source_vals(code)
        vals["oauth2_client_secret_display"] = vals.pop("oauth2_client_secret")
        rec = self.Source.create(vals)
        rec.write({"oauth2_client_secret_display": "Zq9-odoo-form-secret-2"})
        self.env.cr.execute("SELECT oauth2_client_secret FROM spp_dci_data_source WHERE id = %s", (rec.id,))
        self.assertEqual(self.env.cr.fetchone(), (None,))
        self.assertEqual(self.sql_row(code, "client_secret_set"), (True,))

    def test_no_public_token_methods(self):
        """Newest upstream made them private (no RPC); the addon adds none back."""
        from ..models.data_source import UPSTREAM_PUBLIC_TOKEN_METHODS
        for name in ("get_oauth2_token", "get_headers"):
            self.assertEqual(hasattr(self.Source, name), UPSTREAM_PUBLIC_TOKEN_METHODS, name)
        self.assertTrue(hasattr(self.Source, "_get_headers"))

    def test_oauth2_without_secret_is_refused(self):
        with self.assertRaises(ValidationError):
            self.Source.create(self.source_vals(self.new_code(), oauth2_client_secret=False))

    def test_invalid_base_url_is_user_error_and_transaction_goes_on(self):
        with self.assertRaises((UserError, ValidationError)):
            self.Source.create(self.source_vals(self.new_code(), base_url="ftp://x.invalid"))
        self.env.cr.execute("SELECT 1")
        self.assertEqual(self.env.cr.fetchone(), (1,))

    def test_get_by_code_and_registry_type(self):
        code = self.new_code()
        rec = self.Source.create(self.source_vals(code))
        self.assertEqual(self.Source.get_by_code(code), rec)
        self.assertIn(rec, self.Source.get_by_registry_type("ns:org:RegistryType:Civil"))
        with self.assertRaises(UserError):
            self.Source.get_by_code("no_such_" + code)

    @unittest.skipUnless(REGISTRY_URL, "DCI_TEST_REGISTRY_URL not set")
    def test_token_test_connection_and_search(self):
        from odoo.addons.spp_dci_client.services import DCIClient

        code = self.new_code()
        rec = self.Source.create(self.source_vals(code))
        self.assertTrue(rec._get_oauth2_token())
        action = rec.test_connection()
        self.assertEqual(action["params"]["type"], "success", action)
        self.assertIn("authorized: ok", rec.dci_test_steps)
        answer = DCIClient(rec, self.env).search_by_id("UIN", "847951632")
        self.assertEqual(answer["message"]["search_response"][0]["status"], "succ")
        self.assertNotIn(CLIENT_SECRET, str(answer))

    @unittest.skipUnless(REGISTRY_URL, "DCI_TEST_REGISTRY_URL not set")
    def test_failed_call_keeps_transaction(self):
        from odoo.addons.spp_dci_client.services import DCIClient

        rec = self.Source.create(self.source_vals(self.new_code()))
        with self.assertRaises(UserError) as ctx:
            DCIClient(rec, self.env).search_by_id("UIN", "REJECTED")
        self.assertEqual(getattr(ctx.exception, "pgcode", None), "DC007")
        self.assertTrue(self.Source.browse(rec.id).exists())
