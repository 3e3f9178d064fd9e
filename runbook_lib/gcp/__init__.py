"""Control-plane access, one module per GCP product (gcpdiag style).

``api`` is the shared REST client (deadlines, retries, pagination, error translation) and the
``ApiCall`` remediation request; ``vpcaccess``, ``sqladmin``, ``compute``, ``secretmanager`` and
``run`` each offer ``gather(api, params)``, typed views over the raw JSON and pure remediation
builders; ``monitoring`` queries Cloud Monitoring over gRPC.
"""
