from . import models, services, controllers
from .hooks import post_init_hook, uninstall_hook
