from . import sql
from . import client, registries, callbacks
