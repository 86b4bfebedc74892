"""The exception the ingress raises once it has set a gRPC status.

Serve pickles it to its gRPC proxy, which imports this module to read it: so this module imports
nothing. Defined in deployments/ingress.py, the proxy's first error answer made it import torch and
transformers, which held every request through the proxy for 6-7 s and grew it by 370 MB.
"""


class StatusError(Exception):
    """Raised after setting the gRPC status, so the proxy answers with that status."""
