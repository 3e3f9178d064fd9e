"""The registered products: the one lookup over what each ``gcp/<product>.py`` declares
(``PRODUCT``: API name, service, title, least read and write roles).

The client (base URLs, error messages) and the sandbox emulator (service names, titles) read
these; a new product is one declaration in its module and one entry below.
"""
from __future__ import annotations

from runbook_lib.gcp import compute, networkmanagement, run, secretmanager, sqladmin, vpcaccess
from runbook_lib.gcp.api import Product

# In the order messages list them ("expected one of ...").
PRODUCTS: dict[str, Product] = {
    module.PRODUCT.api: module.PRODUCT
    for module in (vpcaccess, sqladmin, compute, secretmanager, run, networkmanagement)
}
