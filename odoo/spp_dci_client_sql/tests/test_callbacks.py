import json

from odoo.tests import HttpCase, tagged


@tagged("post_install", "-at_install")
class TestCallbacks(HttpCase):
    def test_hostile_bodies_are_refused_cleanly(self):
        for body in (b"\xff\xfe not utf-8", b'{"a": "\x00"}'):
            res = self.url_open("/dci/callback/no_such_source/on-search", data=body,
                                headers={"Content-Type": "application/json"})
            self.assertEqual(res.status_code, 400, res.text)
            self.assertEqual(res.json()["message"]["ack_status"], "NACK")

    def test_callback_goes_to_dci_receive(self):
        res = self.url_open("/dci/callback/no_such_source/on-search", data=json.dumps({"header": {}}),
                            headers={"Content-Type": "application/json"})
        self.assertIn(res.status_code, (400, 401, 404), res.text)
