# pylint: disable=pointless-statement
{
    "name": "OpenSPP DCI Client on dci_client (PostgreSQL)",
    "summary": "spp_dci_client and its CRVS, DR and IBR modules run on the dci_client PostgreSQL extension",
    "version": "19.0.2.0.0",
    "category": "OpenSPP/Integration",
    "author": "dci_client",
    "license": "LGPL-3",
    "depends": [
        "spp_dci_client",
        "spp_dci_client_crvs",
        "spp_dci_client_dr",
        "spp_dci_client_ibr",
    ],
    "data": [
        "security/groups.xml",
        "security/ir.model.access.csv",
        "data/ir_config_parameter.xml",
        "views/data_source_views.xml",
        "views/request_log_views.xml",
    ],
    "post_init_hook": "post_init_hook",
    "uninstall_hook": "uninstall_hook",
    "installable": True,
    "application": False,
}
