from . import test_data_source, test_callbacks
