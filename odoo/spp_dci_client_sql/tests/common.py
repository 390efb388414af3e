"""Shared by the Odoo tests (run inside a real Odoo: odoo-bin -i spp_dci_client_sql --test-enable).
They need the dci_client extension in the test database and a DCI registry:
DCI_TEST_REGISTRY_URL (e.g. the bundled mock: python3 test/support/mock_registry.py)
and DCI_TEST_TOKEN_URL; without them the tests that call out are skipped."""
import os
import uuid

from odoo.tests.common import TransactionCase

REGISTRY_URL = os.environ.get("DCI_TEST_REGISTRY_URL")
TOKEN_URL = os.environ.get("DCI_TEST_TOKEN_URL")
CLIENT_ID = os.environ.get("DCI_TEST_CLIENT_ID", "openspp-client")
CLIENT_SECRET = os.environ.get("DCI_TEST_CLIENT_SECRET", "s3cr3t-Pa55word")


class DCISQLCase(TransactionCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.Source = cls.env["spp.dci.data.source"]

    def new_code(self, prefix="t"):
        return "%s_%s" % (prefix, uuid.uuid4().hex[:8])

    def source_vals(self, code, **over):
        vals = {"name": code.upper(), "code": code, "registry_type": "ns:org:RegistryType:Civil",
                "base_url": REGISTRY_URL or "https://registry.invalid", "auth_type": "oauth2",
                "oauth2_token_url": TOKEN_URL or "https://registry.invalid/token",
                "oauth2_client_id": CLIENT_ID, "oauth2_client_secret": CLIENT_SECRET,
                "our_sender_id": "openspp.test", "timeout": 10}
        vals.update(over)
        return vals

    def sql_row(self, code, *cols):
        self.env.cr.execute("SELECT %s FROM dci_data_source WHERE code = %%s" % ", ".join(cols), (code,))
        return self.env.cr.fetchone()
