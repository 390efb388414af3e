from . import data_source, request_log, fastapi_endpoint, signing_key
