"""Control-plane access, one module per GCP product (gcpdiag style).

``api`` is the pure vocabulary (``Product``, ``Resource``, the ``ApiCall`` remediation request,
Google error and operation shapes); ``client`` the one httpx REST client (deadlines, retries,
pagination, error translation); ``products`` the lookup over what each product module declares.
``vpcaccess``, ``sqladmin``, ``compute``, ``secretmanager`` and ``run`` each declare their
``PRODUCT`` and offer ``gather(api, params)``, typed views over the raw JSON and pure remediation
builders; ``networkmanagement`` runs a Connectivity Test (its gather also takes the Cloud Run
revision to start from); ``monitoring`` queries Cloud Monitoring over gRPC and ``metrics`` reads
its records for the checks. Product modules name the client only for typing, so a check that
imports a typed view imports no I/O (``make lint-imports``).
"""
